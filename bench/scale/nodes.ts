/**
 * The chat-node part of `npm run bench:scale` (bench/scale.ts): thousands of users held on the
 * local stack's chat nodes while some of them chat, through three operations in turn:
 *  1. a 4th chat node added (ops/add-chat-node.sh): the users the ring now gives it move there;
 *  2. chat-2 drained (ops/drain-chat-node.sh): its users move before it stops;
 *  3. chat-3 killed with kill -9: its users find their new node through gate (GET /v1/node).
 * Every user is the SDK's ResilientChat on TCP, as an app would hold it: it follows move pushes
 * and, when its node is lost, pauses (exponential, full jitter) and asks gate for its node.
 *
 * For each operation: how many users had to move, the time from the operation's start until
 * each of them was connected and synced again (p50, p99, the last), the busiest second of
 * reconnects, the CPU gate, status and the receiving nodes spent meanwhile, the latency of the
 * sends made during it, and every error that reached a client (a send that failed for good, a
 * chat that gave up). After each, every acked message has reached its recipient exactly once
 * and is stored exactly once.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { GateClient, type LoginAnswer, ResilientChat } from "@shardchat/sdk";
import { loadConfig } from "../../src/config/load.js";
import { StatusServiceService } from "../../src/gen/shardchat/v1/status.js";
import { grpcClient } from "../../src/grpc/api.js";
import type { Uid } from "../../src/ids/identifiers.js";
import { freePort } from "../../test/helpers/ports.js";
import { ROOT, waitFor } from "../../test/helpers/processes.js";
import { type StackServices, stackGrpcOptions, stackInfraUp, startStackServices } from "../../test/helpers/stack.js";
import { storedMessageCounts } from "../../test/helpers/stored-messages.js";
import { markdownTable, percentile } from "../load/report.js";
import { inBatches, LOAD_LIMITS_OFF, ShardchatUsers, stackToolConfig } from "../load/targets.js";
import { machineCpuMs, processCpuMs } from "../load/usage.js";
import type { ScalePart } from "./rebalance.js";

const run = promisify(execFile);
const log = (line: string) => console.log(`[scale] ${line}`);

export interface NodeScenarioSettings {
  /** Users connected through every operation. */
  connected: number;
  /** Of them, how many send (in pairs, to each other). */
  chatting: number;
  /** Their sends per second, in all. */
  chatRate: number;
}

interface Held {
  uid: Uid;
  chat: ResilientChat;
  /** When each reconnect finished (performance.now()), and why it happened. */
  reconnects: { at: number; cause: "move" | "lost" }[];
  /** Times each message (by msgId) reached this user; kept for the chatting users only. */
  received: Map<string, number> | undefined;
  gaveUp: boolean;
}

interface Sent {
  to: Held;
  began: number;
  ms: number;
}

interface OperationResult {
  name: string;
  moved: number;
  back: number;
  /** Per moved user: ms from the operation's start until its reconnect finished. */
  delays: number[];
  /** ms from the start until the ring changed (the node joined, left or was dropped). */
  ringChangedMs: number;
  peakPerSecond: number;
  cpuMs: Record<string, number>;
  sends: number[];
  errors: string[];
  exactlyOnce: string;
}

export async function nodeScenarios(settings: NodeScenarioSettings): Promise<ScalePart> {
  await stackInfraUp();
  const defaults = loadConfig({});
  // The production timings: failover must not lean on a short heartbeat TTL.
  const serviceEnv = {
    ...LOAD_LIMITS_OFF,
    // info: the ops scripts wait for a node's "chat node started" line.
    LOG_LEVEL: "info",
    NODE_HEARTBEAT_INTERVAL_MS: String(defaults.NODE_HEARTBEAT_INTERVAL_MS),
    NODE_TTL_MS: String(defaults.NODE_TTL_MS),
  };
  const stack = await startStackServices("scale-nodes", { chatNodes: 3, env: serviceEnv });
  const opsEnv = { ...process.env, ...stack.vars, ...serviceEnv };
  const held: Held[] = [];
  const status = grpcClient(StatusServiceService, stack.statusAddr, stackGrpcOptions(stack.stack));
  try {
    const config = stackToolConfig(stack);
    const gate = new GateClient(stack.gateUrl);
    let began = performance.now();
    const tickets = await new ShardchatUsers(config, stack.statusAddr, "tcp").tickets(settings.connected);
    log(`${tickets.length} users made in ${((performance.now() - began) / 1000).toFixed(1)} s`);
    began = performance.now();
    await inBatches(tickets, 100, async (t) => {
      if (t.kind !== "shardchat") throw new Error("not a shardchat ticket");
      const login: LoginAnswer = {
        uid: t.id as Uid,
        token: t.token,
        expiresAtMs: Date.now() + 86_400_000,
        nodeId: t.node,
        host: t.host,
        port: t.port,
        wsUrl: t.wsUrl,
      };
      const chat = await ResilientChat.open(login, {
        transport: "tcp",
        // A lost node: the token stays good, so gate only says which node owns the user now.
        relogin: async () => ({ ...login, ...(await gate.node(login)) }),
      });
      const user: Held = {
        uid: login.uid,
        chat,
        reconnects: [],
        received: held.length < settings.chatting ? new Map() : undefined,
        gaveUp: false,
      };
      held.push(user);
      user.chat.on("reconnected", ({ cause }) => user.reconnects.push({ at: performance.now(), cause }));
      user.chat.on("gaveUp", () => {
        user.gaveUp = true;
      });
      user.chat.on("message", (m) => user.received?.set(m.msgId, (user.received.get(m.msgId) ?? 0) + 1));
    });
    const connectSeconds = (performance.now() - began) / 1000;
    log(`${held.length} users connected in ${connectSeconds.toFixed(1)} s`);

    const owners = async (): Promise<Map<Held, string>> => {
      const owner = new Map<Held, string>();
      await inBatches(held, 200, async (u) => {
        owner.set(u, (await status.api.getChatNode({ uid: u.uid })).node?.nodeId ?? "none");
      });
      return owner;
    };
    const traffic = startTraffic(held.slice(0, settings.chatting - (settings.chatting % 2)), settings.chatRate);
    await sleep(5000);

    const operation = async (
      name: string,
      act: () => Promise<void>,
      moversOf: (before: Map<Held, string>, after: Map<Held, string>) => Held[],
      ringChanged: () => Promise<boolean>,
      receivers: string[],
    ): Promise<OperationResult> => {
      log(`${name}: starting`);
      const before = await owners();
      const pids = ["gate", "status", ...receivers];
      const cpuBefore = new Map(pids.map((p) => [p, cpuMsOf(stack, p)]));
      const errorsBefore = traffic.errors.length;
      const machineBefore = machineCpuMs().busyMs;
      const ownBefore = process.cpuUsage();
      const start = performance.now();
      const ringWatch = (async () => {
        while (!(await ringChanged())) await sleep(20);
        return performance.now() - start;
      })();
      await act();
      const ringChangedMs = await ringWatch;
      const after = await owners();
      const movers = moversOf(before, after);
      const backAt = (u: Held) => u.reconnects.find((r) => r.at >= start)?.at;
      await waitFor(
        `${name}: every moved user connected again`,
        () => movers.every((u) => backAt(u) !== undefined && u.chat.connected),
        120_000,
      ).catch((err: unknown) => log(String(err)));
      const settled = performance.now();
      const cpuMs: Record<string, number> = {};
      for (const p of pids) cpuMs[p] = Math.round(cpuMsOf(stack, p) - (cpuBefore.get(p) ?? 0));
      const own = process.cpuUsage(ownBefore);
      cpuMs.clients = Math.round((own.user + own.system) / 1000);
      cpuMs.machine = Math.round(machineCpuMs().busyMs - machineBefore);
      const delays = movers.flatMap((u) => {
        const at = backAt(u);
        return at === undefined ? [] : [at - start];
      });
      const result: OperationResult = {
        name,
        moved: movers.length,
        back: delays.length,
        delays,
        ringChangedMs,
        peakPerSecond: peakPerSecond(delays),
        cpuMs,
        sends: traffic.sent.filter((s) => s.began >= start && s.began <= settled).map((s) => s.ms),
        errors: [
          ...traffic.errors.slice(errorsBefore),
          ...held.filter((u) => u.gaveUp).map((u) => `${u.uid} gave up reconnecting`),
        ],
        exactlyOnce: await exactlyOnce(traffic, stack),
      };
      log(
        `${name}: ${result.back} of ${result.moved} moved users back, p50 ${percentile(delays, 0.5)} ms, p99 ${percentile(delays, 0.99)} ms, last ${percentile(delays, 1)} ms; ${result.exactlyOnce}`,
      );
      return result;
    };

    const results: OperationResult[] = [];
    const ports = new Set<number>();
    while (ports.size < 3) ports.add(await freePort());
    const [tcp, ws, grpc] = [...ports];
    results.push(
      await operation(
        "add chat-4",
        async () => {
          const env = { ...opsEnv, CHAT_TCP_PORT: String(tcp), CHAT_WS_PORT: String(ws), CHAT_GRPC_PORT: String(grpc) };
          await run("bash", [join(ROOT, "ops/add-chat-node.sh"), "4"], { env, timeout: 120_000 });
        },
        (before, after) => held.filter((u) => after.get(u) !== before.get(u)),
        async () => (await ringNodes(status)).has("chat-4"),
        ["chat-4"],
      ),
    );
    results.push(
      await operation(
        "drain chat-2",
        async () => {
          await run("bash", [join(ROOT, "ops/drain-chat-node.sh"), "2"], { env: opsEnv, timeout: 120_000 });
        },
        (before) => held.filter((u) => before.get(u) === "chat-2"),
        async () => !(await ringNodes(status)).has("chat-2"),
        ["chat-1", "chat-3", "chat-4"],
      ),
    );
    results.push(
      await operation(
        "kill -9 chat-3",
        async () => {
          process.kill(stack.pidOf("chat-3"), "SIGKILL");
        },
        (before) => held.filter((u) => before.get(u) === "chat-3"),
        async () => !(await ringNodes(status)).has("chat-3"),
        ["chat-1", "chat-4"],
      ),
    );
    await traffic.stop();

    const ok = results.every((r) => r.back === r.moved && r.errors.length === 0 && r.exactlyOnce.startsWith("yes"));
    const markdown = [
      "## Chat nodes added, drained and killed",
      "",
      `Settings: ${held.length} users connected over TCP (the SDK's ResilientChat: it follows move pushes, and after a lost node pauses at random up to 200 ms, doubling per attempt, then asks gate for its node with its token), ${settings.chatting} of them sending to each other at ${settings.chatRate} msg/s in all; 3 chat nodes to start with; NODE_HEARTBEAT_INTERVAL_MS ${defaults.NODE_HEARTBEAT_INTERVAL_MS}, NODE_TTL_MS ${defaults.NODE_TTL_MS}, CHAT_RING_CHECK_MS ${defaults.CHAT_RING_CHECK_MS} (the defaults). Connecting everyone took ${connectSeconds.toFixed(1)} s. The operations ran one after the other, in this order.`,
      "",
      markdownTable(
        [
          "operation",
          "users moved",
          "back",
          "ring changed after ms",
          "back p50 ms",
          "back p99 ms",
          "last back ms",
          "busiest second, reconnects",
          "CPU ms: gate / status / receivers",
          "CPU ms: the clients (this process) / the machine",
          "machine CPU ms per moved user",
          "sends during it: acked, p50, p99 ms",
          "errors to clients",
          "exactly once",
        ],
        results.map((r) => [
          r.name,
          r.moved,
          r.back,
          Math.round(r.ringChangedMs),
          percentile(r.delays, 0.5),
          percentile(r.delays, 0.99),
          percentile(r.delays, 1),
          r.peakPerSecond,
          `${r.cpuMs.gate} / ${r.cpuMs.status} / ${Object.entries(r.cpuMs)
            .filter(([p]) => p.startsWith("chat-"))
            .map(([p, ms]) => `${p} ${ms}`)
            .join(", ")}`,
          `${r.cpuMs.clients} / ${r.cpuMs.machine}`,
          ((r.cpuMs.machine ?? 0) / Math.max(r.moved, 1)).toFixed(1),
          `${r.sends.length}, ${percentile(r.sends, 0.5)}, ${percentile(r.sends, 0.99)}`,
          r.errors.length,
          r.exactlyOnce,
        ]),
      ),
      "",
      "Times are from the operation's start: the add script's start (it starts a Node process, which joins the ring once it has registered), the drain's SIGTERM, the kill. A user is back when its reconnect, sync included, has finished. CPU is over the operation, from its start until the last moved user was back: the receivers are the nodes the moved users went to; the clients are this process (every user's SDK, and the senders); the machine is every core's busy time (/proc/stat), everything on it included (MariaDB, Redis, the rest of the stack). The send latency counts the sends begun during the operation, a resend after a reconnect included.",
      ...results.flatMap((r) =>
        r.errors.length > 0 ? ["", `Errors during ${r.name}: ${r.errors.slice(0, 10).join("; ")}`] : [],
      ),
      "",
    ].join("\n");
    return {
      markdown,
      json: {
        settings,
        connectSeconds,
        results: results.map(({ delays, sends, ...r }) => ({ ...r, sends: sends.length })),
      },
      ok,
    };
  } finally {
    await inBatches(held, 500, (u) => u.chat.close().catch(() => undefined));
    status.close();
    await stack.stop();
  }
}

interface Traffic {
  sent: Sent[];
  acked: Map<string, Held>;
  errors: string[];
  stop(): Promise<void>;
}

/** Pairs of users sending to each other, `rate` sends per second in all. */
function startTraffic(users: Held[], rate: number): Traffic {
  const traffic: Traffic = { sent: [], acked: new Map(), errors: [], stop: async () => undefined };
  let going = true;
  const pause = (users.length / Math.max(rate, 0.001)) * 1000;
  const loops = users.map(async (from, i) => {
    const to = users[i % 2 === 0 ? i + 1 : i - 1] as Held;
    await sleep(Math.random() * pause);
    for (let n = 0; going; n++) {
      const began = performance.now();
      try {
        const ack = await from.chat.sendText(to.uid, `${i}:${n}`);
        traffic.acked.set(ack.msgId, to);
        traffic.sent.push({ to, began, ms: performance.now() - began });
      } catch (err) {
        traffic.errors.push(`send from ${from.uid}: ${(err as Error).message}`);
      }
      await sleep(Math.max(0, pause - (performance.now() - began)));
    }
  });
  traffic.stop = async () => {
    going = false;
    await Promise.all(loops);
  };
  return traffic;
}

/** Every message acked so far reached its recipient exactly once and is stored exactly once. */
async function exactlyOnce(traffic: Traffic, stack: StackServices): Promise<string> {
  const snapshot = new Map(traffic.acked);
  const times = (id: string, to: Held) => to.received?.get(id) ?? 0;
  await waitFor(
    "every acked message delivered",
    () => [...snapshot].every(([id, to]) => times(id, to) >= 1),
    60_000,
  ).catch(() => undefined);
  const missing = [...snapshot].filter(([id, to]) => times(id, to) === 0).length;
  const repeated = [...snapshot].filter(([id, to]) => times(id, to) > 1).length;
  const stored = await storedMessageCounts(stack.mysqlUrls, [...snapshot.keys()]);
  const notOnce = [...snapshot.keys()].filter((id) => stored.get(id) !== 1).length;
  return missing + repeated + notOnce === 0
    ? `yes (${snapshot.size} acked)`
    : `no: ${missing} not delivered, ${repeated} delivered twice, ${notOnce} not stored once, of ${snapshot.size}`;
}

/** The chat nodes in status's ring now. */
async function ringNodes(status: ReturnType<typeof grpcClient<typeof StatusServiceService>>): Promise<Set<string>> {
  const { nodes } = await status.api.listNodes({});
  return new Set(nodes.map((n) => n.nodeId));
}

/** CPU ms a stack service has used so far; 0 before it started (a node being added). */
function cpuMsOf(stack: StackServices, service: string): number {
  try {
    return processCpuMs(stack.pidOf(service)) ?? 0;
  } catch {
    return 0;
  }
}

/** The most reconnects that finished within one second (delays in ms). */
function peakPerSecond(delays: number[]): number {
  const sorted = [...delays].sort((a, b) => a - b);
  let peak = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while ((sorted[i] as number) - (sorted[j] as number) >= 1000) j++;
    peak = Math.max(peak, i - j + 1);
  }
  return peak;
}
