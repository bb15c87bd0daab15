import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { GateClient, type LoginAnswer, ResilientChat } from "@shardchat/sdk";
import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChatMessage } from "../../packages/protocol/src/wire.js";
import { Rebalancer, type SlotDigest } from "../../sharding/rebalance.js";
import { loadConfig } from "../../src/config/load.js";
import { StatusServiceService } from "../../src/gen/shardchat/v1/status.js";
import { type GrpcClient, grpcClient } from "../../src/grpc/api.js";
import type { Uid } from "../../src/ids/identifiers.js";
import { ChatRing } from "../../src/routing/ring.js";
import { createPool, type Pool } from "../../src/storage/mysql/pool.js";
import { type ShardMap, slotOf } from "../../src/storage/sharded/shard-map.js";
import { readShardMap } from "../../src/storage/sharded/shards.js";
import { freePort, preferredPort } from "../helpers/ports.js";
import { ROOT, waitFor } from "../helpers/processes.js";
import { codeFromMail } from "../helpers/smtp-sink.js";
import {
  failedOverAway,
  restoreKilledRedisMaster,
  type StackServices,
  stackGrpcOptions,
  stackInfraUp,
  startStackServices,
} from "../helpers/stack.js";
import { storedMessageCounts } from "../helpers/stored-messages.js";

/**
 * Scaling out under live 1:1 chat (issue 7), on the local multi-shard stack: add a 4th chat
 * node, drain one, kill one, add a 4th MySQL instance and rebalance a third of the slots to
 * it, then move them back while a Redis master fails over and a 5th chat node joins. Users chat at a steady rate throughout through the SDK's ResilientChat (it follows move
 * pushes, and logs in through gate again when its node dies). After each operation every
 * acked message was delivered exactly once and is stored exactly once; the rebalance leaves
 * every slot's row count and checksum as they were.
 */
const USERS = 10;
/** Pause between two sends of one user: USERS / SEND_EVERY_MS * 1000 messages per second. */
const SEND_EVERY_MS = 150;
const SERVICE_ENV = {
  CHAT_RING_CHECK_MS: "300",
  CHAT_DRAIN_TIMEOUT_MS: "10000",
  SHARD_MAP_REFRESH_MS: "500",
  SHARD_FENCE_WAIT_MS: "10000",
  NODE_HEARTBEAT_INTERVAL_MS: "500",
  NODE_TTL_MS: "3000",
  LOG_LEVEL: "info",
};
const run = promisify(execFile);

interface User {
  email: string;
  password: string;
  login: LoginAnswer;
  chat: ResilientChat;
  received: ChatMessage[];
  moves: number;
  relogins: number;
}

interface Acked {
  convId: string;
  seq: number;
  to: Uid;
}

let stack: StackServices;
let gate: GateClient;
let status: GrpcClient<typeof StatusServiceService>;
const users: User[] = [];
const acked = new Map<string, Acked>();
const failures: string[] = [];
/** Send latencies (send to ack, retries included) per phase. */
const latencies = new Map<string, number[]>();
let phase = "warm-up";
let sending = false;
let senders: Promise<void>[] = [];
let mysqlUrls: string[] = [];
let extraPort = 0;
const timings: string[] = [];

async function register(name: string): Promise<User> {
  const email = `${name}@scale.test`;
  const password = `pw-${name}-secret`;
  await gate.requestVerifyCode(email);
  const code = codeFromMail(await stack.smtp.waitForMail(email));
  await gate.register({ user: name, email, password, code });
  const login = await gate.login(email, password);
  const user = { email, password, login, received: [], moves: 0, relogins: 0 } as unknown as User;
  user.chat = await ResilientChat.open(login, {
    relogin: () => gate.login(email, password),
    retryDelayMs: 200,
    maxAttempts: 150,
  });
  user.chat.on("message", (m) => user.received.push(m));
  user.chat.on("reconnected", ({ cause }) => {
    if (cause === "move") user.moves++;
    else user.relogins++;
  });
  return user;
}

/** Each user sends to the next one, one message at a time, at a steady pace. */
function startTraffic(): void {
  sending = true;
  senders = users.map(async (from, i) => {
    const to = users[(i + 1) % users.length] as User;
    for (let n = 0; sending; n++) {
      const began = performance.now();
      const label = phase;
      try {
        const ack = await from.chat.sendText(to.login.uid, `${i}:${n}`);
        acked.set(ack.msgId, { convId: ack.convId, seq: ack.seq, to: to.login.uid });
        latencies.set(label, [...(latencies.get(label) ?? []), performance.now() - began]);
      } catch (err) {
        failures.push(`${label}: ${(err as Error).message}`);
      }
      await new Promise((resolve) => setTimeout(resolve, SEND_EVERY_MS));
    }
  });
}

async function stopTraffic(): Promise<void> {
  sending = false;
  await Promise.all(senders);
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))] ?? 0);
}

/** Runs an operation while the traffic goes on; notes how long it took and the latency during it. */
async function operation(name: string, work: () => Promise<void>): Promise<void> {
  phase = name;
  const began = performance.now();
  await work();
  const seconds = ((performance.now() - began) / 1000).toFixed(1);
  const during = latencies.get(name) ?? [];
  const line = `${name}: ${seconds}s; ${during.length} sends acked during it, latency p50 ${percentile(during, 0.5)} ms, p99 ${percentile(during, 0.99)} ms, max ${percentile(during, 1)} ms`;
  timings.push(line);
  console.log(`[scale] ${line}`);
  phase = `after ${name}`;
}

/** Every message acked so far reaches its recipient exactly once and is stored exactly once. */
async function expectExactlyOnce(label: string): Promise<void> {
  const snapshot = new Map(acked);
  const byUid = new Map(users.map((u) => [u.login.uid, u]));
  const receivedCount = (u: User, msgId: string) => u.received.filter((m) => m.msgId === msgId).length;
  await waitFor(
    `${label}: every acked message delivered`,
    () => [...snapshot].every(([id, m]) => receivedCount(byUid.get(m.to) as User, id) >= 1),
    60_000,
  );
  for (const [id, m] of snapshot) expect(receivedCount(byUid.get(m.to) as User, id), `${label}: ${id}`).toBe(1);
  const stored = await storedMessageCounts(mysqlUrls, [...snapshot.keys()]);
  for (const id of snapshot.keys()) expect(stored.get(id), `${label}: ${id} stored`).toBe(1);
  expect(failures, `${label}: sends that failed for good`).toEqual([]);
  console.log(`[scale] ${label}: ${snapshot.size} acked messages, each delivered once and stored once`);
}

/** The node status assigns each user to now (asking gate would replace their tokens). */
async function owners(): Promise<Map<User, string>> {
  const owner = new Map<User, string>();
  for (const u of users) owner.set(u, (await status.api.getChatNode({ uid: u.login.uid })).node?.nodeId ?? "none");
  return owner;
}

async function nodeCount(): Promise<Set<string>> {
  return new Set((await owners()).values());
}

/**
 * Waits until the users whose owner changed since `before` have each followed a move push
 * (and only they), and every chat is connected. Answers how many moved.
 */
async function movesSettled(before: Map<User, string>, movesBefore: Map<User, number>): Promise<number> {
  let movers: User[] = [];
  await waitFor(
    "the moved users reconnected at their new nodes",
    async () => {
      const now = await owners();
      movers = users.filter((u) => now.get(u) !== before.get(u));
      return (
        movers.length > 0 &&
        movers.every((u) => u.moves > (movesBefore.get(u) ?? 0)) &&
        users.every((u) => u.chat.connected)
      );
    },
    30_000,
  );
  for (const u of users)
    if (!movers.includes(u)) expect(u.moves, "a user whose owner did not change moved").toBe(movesBefore.get(u));
  return movers.length;
}

function opsEnv(): NodeJS.ProcessEnv {
  return { ...process.env, ...stack.vars, ...SERVICE_ENV };
}

beforeAll(async () => {
  await stackInfraUp();
  stack = await startStackServices("scale", { chatNodes: 3, env: SERVICE_ENV });
  mysqlUrls = [...stack.mysqlUrls];
  gate = new GateClient(stack.gateUrl);
  status = grpcClient(StatusServiceService, stack.statusAddr, stackGrpcOptions(stack.stack));
  // Enough users that every operation moves someone: the ring decides, so register until it does.
  const vnodes = loadConfig({}).RING_VNODES;
  const ring = (ids: number[]) =>
    new ChatRing(
      ids.map((i) => ({ nodeId: `chat-${i}`, weight: 1 })),
      vnodes,
    );
  const [now, withFourth, afterDrain] = [ring([1, 2, 3]), ring([1, 2, 3, 4]), ring([1, 3, 4])];
  const enough = () =>
    users.length >= USERS &&
    new Set(users.map((u) => now.ownerOf(u.login.uid))).size === 3 &&
    users.filter((u) => withFourth.ownerOf(u.login.uid) === "chat-4").length >= 2 &&
    users.some((u) => withFourth.ownerOf(u.login.uid) === "chat-2") &&
    users.some((u) => afterDrain.ownerOf(u.login.uid) === "chat-3");
  for (let i = 0; !enough(); i++) {
    if (i >= 40) throw new Error("40 users and still no user for some operation");
    users.push(await register(`scale${i}`));
  }
  startTraffic();
  await waitFor("traffic flowing", () => acked.size >= USERS * 3, 30_000);
}, 300_000);

afterAll(async () => {
  await stopTraffic().catch(() => undefined);
  await Promise.all(users.map((u) => u.chat.close().catch(() => undefined)));
  status?.close();
  await stack?.stop();
  if (extraPort) {
    // The mariadbd this test added: its database goes, then the server (it is not part of the stack).
    const url = mysqlUrls.at(-1) as string;
    const conn = await mysql.createConnection({ uri: url.replace(/\/[^/]*$/, "/") }).catch(() => undefined);
    await conn?.query(`DROP DATABASE IF EXISTS \`${new URL(url).pathname.slice(1)}\``).catch(() => undefined);
    await conn?.end();
    const pidFile = join(stack.vars.STACK_RUN_DIR as string, `mariadb-${extraPort}.pid`);
    if (existsSync(pidFile)) process.kill(Number(readFileSync(pidFile, "utf8").trim()), "SIGTERM");
  }
  console.log(`[scale] summary:\n  ${timings.join("\n  ")}`);
}, 300_000);

describe("scaling out while users chat", () => {
  it("adds a 4th chat node: only the users it now owns move to it, nothing is lost", async () => {
    const before = await owners();
    expect(new Set(before.values())).toEqual(new Set(["chat-1", "chat-2", "chat-3"]));
    const movesBefore = new Map(users.map((u) => [u, u.moves]));
    let moved = 0;
    await operation("add chat-4", async () => {
      // Ports of its own: base + 3 was not checked free when the stack's ports were picked.
      const picked = new Set<number>();
      while (picked.size < 3) picked.add(await freePort());
      const [tcp, ws, grpc] = [...picked];
      const env = { ...opsEnv(), CHAT_TCP_PORT: String(tcp), CHAT_WS_PORT: String(ws), CHAT_GRPC_PORT: String(grpc) };
      const { stdout } = await run("bash", [join(ROOT, "ops/add-chat-node.sh")], { env, timeout: 120_000 });
      console.log(stdout.trim());
      moved = await movesSettled(before, movesBefore);
    });
    const after = await owners();
    console.log(`[scale] ${moved} of ${users.length} users moved to chat-4`);
    // Consistent hashing: whoever changed owner went to the new node, nobody between old ones.
    for (const u of users) if (after.get(u) !== before.get(u)) expect(after.get(u)).toBe("chat-4");
    expect(moved).toBeLessThan(users.length);
    await expectExactlyOnce("after adding chat-4");
  });

  it("drains chat-2: its users move before it stops", async () => {
    const before = users.reduce((n, u) => n + u.relogins, 0);
    const ownersBefore = await owners();
    const movesBefore = new Map(users.map((u) => [u, u.moves]));
    await operation("drain chat-2", async () => {
      const { stdout } = await run("bash", [join(ROOT, "ops/drain-chat-node.sh"), "2"], {
        env: opsEnv(),
        timeout: 120_000,
      });
      console.log(stdout.trim());
      // The drained node's users, and only they, moved (its script returns once they left).
      const moved = await movesSettled(ownersBefore, movesBefore);
      expect(moved).toBe([...ownersBefore.values()].filter((n) => n === "chat-2").length);
    });
    expect(await nodeCount()).not.toContain("chat-2");
    // A drain moves users: none of them had to find a node through gate.
    expect(users.reduce((n, u) => n + u.relogins, 0)).toBe(before);
    await expectExactlyOnce("after draining chat-2");
  });

  it("kills chat-3: after its heartbeats stop, its users reconnect through gate", async () => {
    await operation("kill chat-3", async () => {
      process.kill(stack.pidOf("chat-3"), "SIGKILL");
      await waitFor("chat-3 out of the ring", async () => !(await nodeCount()).has("chat-3"), 30_000);
      await waitFor("every chat reconnected", () => users.every((u) => u.chat.connected), 60_000);
    });
    await expectExactlyOnce("after killing chat-3");
  });

  it("adds a Redis master with a replica, reshards onto it, and takes it out again", async () => {
    const [master, replica] = await freeRedisPorts();
    const script = join(ROOT, "ops/redis-add-master.sh");
    const remove = () =>
      run("bash", [script, "--remove", String(master), String(replica)], { env: opsEnv(), timeout: 240_000 });
    try {
      await operation("add a Redis master and reshard", async () => {
        const { stdout } = await run("bash", [script, String(master), String(replica)], {
          env: opsEnv(),
          timeout: 240_000,
        });
        console.log(stdout.trim());
        expect(stdout).toMatch(new RegExp(`master ${master} owns [1-9]\\d* hash slots`));
      });
      await expectExactlyOnce("after adding a Redis master");
    } catch (err) {
      // Back to the stack's own six nodes whatever happened, or every later test meets the
      // half-grown cluster.
      await remove().catch((e) => console.error(`[scale] removing the Redis master failed too: ${e}`));
      throw err;
    }
    await operation("remove the Redis master", async () => {
      console.log((await remove()).stdout.trim());
    });
    await expectExactlyOnce("after removing the Redis master");
  }, 400_000);

  it("adds a 4th MySQL instance and rebalances a third of the slots to it", async () => {
    extraPort = await preferredPort(3309);
    const shardsEnv = { ...opsEnv(), MYSQL_SHARDS: mysqlUrls.join(","), REBALANCE_BATCH_SLOTS: "64" };
    const control = createPool({ MYSQL_URL: mysqlUrls[0] as string, MYSQL_POOL_SIZE: 2 });
    const checker = new Rebalancer(control, {
      batchSlots: 64,
      copyRows: 1000,
      cleanupGraceMs: 0,
      credentialsFrom: mysqlUrls[0],
    });
    try {
      const before = await allDigests(control, checker);
      const newUrl = mysqlUrls[0]?.replace(/:\d+\//, `:${extraPort}/`) as string;
      await operation("add MySQL instance", async () => {
        const { stdout } = await run("bash", [join(ROOT, "ops/add-mysql-instance.sh"), String(extraPort)], {
          env: opsEnv(),
          timeout: 240_000,
        });
        console.log(stdout.trim().split("\n").slice(-2).join("\n"));
      });
      mysqlUrls.push(newUrl);
      const cli = (args: string[]) =>
        run("node", ["--import", "tsx", join(ROOT, "sharding/rebalance-cli.ts"), ...args], {
          env: shardsEnv,
          cwd: ROOT,
          timeout: 300_000,
        });
      const dry = await cli(["--add", `s3=${newUrl}`, "--share", "1/3", "--dry-run"]);
      console.log(dry.stdout.trim());
      expect(dry.stdout).toMatch(/341 of 1024 slots move/);
      await operation("rebalance 341 slots", async () => {
        const { stdout } = await cli(["--add", `s3=${newUrl}`, "--share", "1/3"]);
        console.log(stdout.trim().split("\n").slice(-3).join("\n"));
      });
      const map = (await readShardMap(control)) as ShardMap;
      expect(map.owner.filter((o) => map.instances[o]?.id === "s3")).toHaveLength(341);
      await expectExactlyOnce("after the rebalance");

      // Per slot, rows and checksums as before, except the slots the traffic kept writing to.
      await stopTraffic();
      const live = new Set([...acked.values()].map((m) => slotOf(m.convId, map.slots)));
      const after = await allDigests(control, checker);
      let compared = 0;
      for (const [slot, digest] of before) {
        if (live.has(slot)) continue;
        expect(after.get(slot), `slot ${slot}`).toEqual(digest);
        compared++;
      }
      console.log(`[scale] ${compared} slots hold the same rows and checksums as before; ${live.size} had live writes`);
      // Those hold exactly the acked messages of their conversations.
      const stored = await storedMessageCounts(mysqlUrls, [...acked.keys()]);
      expect([...acked.keys()].every((id) => stored.get(id) === 1)).toBe(true);
    } finally {
      await checker.close();
      await control.end();
    }
  }, 400_000);

  it("moves the slots back while a Redis master fails over and a chat node joins: nothing is lost", async () => {
    // Traffic again (the rebalance test stopped it to compare digests).
    const ackedBefore = acked.size;
    startTraffic();
    await waitFor("traffic flowing again", () => acked.size >= ackedBefore + USERS, 30_000);
    const shardsEnv = {
      ...opsEnv(),
      MYSQL_SHARDS: mysqlUrls.join(","),
      REBALANCE_BATCH_SLOTS: "64",
      // Slow enough that both faults land while slots are still moving (s3 holds a third of
      // everything the traffic wrote so far: thousands of rows).
      REBALANCE_MAX_ROWS_PER_SECOND: "50",
    };
    const ownersBefore = await owners();
    const movesBefore = new Map(users.map((u) => [u, u.moves]));
    let faultsDoneAt = 0;
    let rebalanceDoneAt = 0;
    await operation("retire s3 under faults", async () => {
      const rebalance = run("node", ["--import", "tsx", join(ROOT, "sharding/rebalance-cli.ts"), "--retire", "s3"], {
        env: shardsEnv,
        cwd: ROOT,
        timeout: 300_000,
      }).then((done) => {
        rebalanceDoneAt = performance.now();
        return done;
      });
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const victim = await someRedisMaster();
      await run("redis-cli", ["-p", String(victim), "shutdown", "nosave"]).catch(() => undefined);
      await failedOverAway(stack.stack, victim);
      const picked = new Set<number>();
      while (picked.size < 3) picked.add(await freePort());
      const [tcp, ws, grpc] = [...picked];
      const env = { ...opsEnv(), CHAT_TCP_PORT: String(tcp), CHAT_WS_PORT: String(ws), CHAT_GRPC_PORT: String(grpc) };
      console.log(
        (await run("bash", [join(ROOT, "ops/add-chat-node.sh"), "5"], { env, timeout: 120_000 })).stdout.trim(),
      );
      faultsDoneAt = performance.now();
      const { stdout } = await rebalance;
      console.log(stdout.trim().split("\n").slice(-3).join("\n"));
      await restoreKilledRedisMaster(stack.stack, victim);
      await movesSettled(ownersBefore, movesBefore);
    });
    // Both faults happened while the rebalance ran, not after it.
    expect(rebalanceDoneAt).toBeGreaterThan(faultsDoneAt);
    const control = createPool({ MYSQL_URL: mysqlUrls[0] as string, MYSQL_POOL_SIZE: 2 });
    try {
      const map = (await readShardMap(control)) as ShardMap;
      expect(map.owner.filter((o) => map.instances[o]?.id === "s3")).toHaveLength(0);
    } finally {
      await control.end();
    }
    await expectExactlyOnce("after moving the slots back under faults");
    await stopTraffic();
  }, 600_000);
});

/** The port of a Redis master of the stack's cluster that serves slots. */
async function someRedisMaster(): Promise<number> {
  for (const port of stack.stack.redisPorts) {
    const { stdout } = await run("redis-cli", ["-p", String(port), "cluster", "nodes"]);
    const self = stdout.split("\n").find((line) => line.includes("myself"));
    // A master's line lists its slot ranges after the link state.
    if (self && /\bmaster\b/.test(self) && / connected \d/.test(self)) return port;
  }
  throw new Error("no Redis master with slots");
}

/** Rows and checksum of every slot, on whichever instance owns it now. */
async function allDigests(control: Pool, checker: Rebalancer): Promise<Map<number, SlotDigest>> {
  const map = (await readShardMap(control)) as ShardMap;
  await checker.prepare();
  const all = new Map<number, SlotDigest>();
  for (const [index, instance] of map.instances.entries()) {
    const own = map.owner.flatMap((o, slot) => (o === index ? [slot] : []));
    for (const [slot, d] of await checker.digests(instance.id, own, map.slots)) all.set(slot, d);
  }
  return all;
}

/** Two ports for new Redis nodes: free, and so are their cluster bus ports (port + 10000). */
async function freeRedisPorts(): Promise<[number, number]> {
  const { createServer } = await import("node:net");
  const isFree = (port: number) =>
    new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once("error", () => resolve(false));
      s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
    });
  const found: number[] = [];
  for (let port = 7007; found.length < 2 && port < 7100; port++) {
    if ((await isFree(port)) && (await isFree(port + 10_000))) found.push(port);
  }
  if (found.length < 2) throw new Error("no free ports for two more Redis nodes");
  return found as [number, number];
}
