/** The connect and login-storm scenarios (chat-1to1 is in chat.ts). */
import { GateClient } from "../../src/sdk/gate-client.js";
import { openChat } from "../../src/sdk/open-chat.js";
import type { ConnectWorkerData, FromConnectWorker } from "./connect-worker.js";
import { fullGc } from "./full-gc.js";
import { encodeHistogram, type Latency, latencyOf, mergeEncoded, newHistogram, recordMs } from "./histogram.js";
import { inBatches, rssOf, type Target } from "./targets.js";
import { tsWorker } from "./ts-worker.js";

/** Connections per loopback source address: under the ~28k ephemeral ports each address has. */
export const PER_SOURCE_ADDRESS = 20_000;

export interface ConnectReport {
  scenario: "connect";
  target: string;
  requested: number;
  held: number;
  failed: number;
  firstError?: string;
  connectSeconds: number;
  connectsPerSecond: number;
  sourceAddresses: string[];
  rssBeforeBytes: number;
  rssAfterBytes: number;
  /** Growth of the RSS of the processes holding the connections, per connection held. */
  rssPerConnectionBytes: number;
  /**
   * The same after a full GC in each of those processes (also before connecting): what the
   * connections retain, without the garbage of their logins that V8 has not collected yet.
   * Undefined when the processes could not be reached through the inspector.
   */
  rssRetainedPerConnectionBytes?: number;
  ok: boolean;
}

const connectWorkerUrl = new URL("./connect-worker.ts", import.meta.url);

/** Opens `count` idle, heart-beating connections, measures, and closes them. */
export async function runConnect(
  target: Target,
  options: {
    count: number;
    workers?: number;
    concurrency?: number;
    holdMs?: number;
    /** Connections per source address (default PER_SOURCE_ADDRESS). */
    perAddress?: number;
    onProgress?: (s: string) => void;
  },
): Promise<ConnectReport> {
  const perAddress = options.perAddress ?? PER_SOURCE_ADDRESS;
  const tickets = await target.tickets(options.count);
  const addresses = Array.from({ length: Math.ceil(options.count / perAddress) }, (_, i) => `127.0.0.${i + 2}`);
  const pids = target.connectionPids();
  const rss = () => pids.reduce((sum, pid) => sum + rssOf(pid), 0);
  const collected = await fullGc(pids).then(
    () => true,
    (err: unknown) => {
      options.onProgress?.(`no full GC before measuring: ${(err as Error).message}`);
      return false;
    },
  );
  const rssBefore = rss();
  const workerCount = Math.max(1, Math.min(options.workers ?? 2, options.count));
  const share = Math.ceil(tickets.length / workerCount);
  const started = performance.now();
  const progress = new Array<{ connected: number; failed: number }>(workerCount).fill({ connected: 0, failed: 0 });
  const ticker = setInterval(() => {
    const c = progress.reduce((a, p) => a + p.connected, 0);
    const f = progress.reduce((a, p) => a + p.failed, 0);
    options.onProgress?.(`connect: ${c}/${options.count} held, ${f} failed`);
  }, 500);
  const workers = Array.from({ length: workerCount }, (_, w) => {
    const data: ConnectWorkerData = {
      tickets: tickets.slice(w * share, (w + 1) * share),
      localAddresses: addresses,
      perAddress,
      offset: w * share,
      concurrency: options.concurrency ?? 64,
    };
    return tsWorker(connectWorkerUrl, { workerData: data });
  });
  const held = await Promise.all(
    workers.map(
      (worker, w) =>
        new Promise<Extract<FromConnectWorker, { type: "held" }>>((resolve, reject) => {
          worker.on("message", (m: FromConnectWorker) => {
            if (m.type === "progress") progress[w] = m;
            if (m.type === "held") resolve(m);
          });
          worker.once("error", reject);
        }),
    ),
  );
  clearInterval(ticker);
  const connectSeconds = (performance.now() - started) / 1000;
  // Let heartbeats and lazily grown buffers settle before reading memory.
  await new Promise((r) => setTimeout(r, options.holdMs ?? 2000));
  const rssAfter = rss();
  const rssRetained = collected ? await fullGc(pids).then(rss, () => undefined) : undefined;
  await Promise.all(
    workers.map(
      (worker) =>
        new Promise<void>((resolve) => {
          worker.on("message", (m: FromConnectWorker) => m.type === "closed" && resolve());
          worker.postMessage("close");
        }),
    ),
  );
  await Promise.all(workers.map((w) => w.terminate()));
  const heldCount = held.reduce((a, h) => a + h.connected, 0);
  const failed = held.reduce((a, h) => a + h.failed, 0);
  const firstError = held.find((h) => h.firstError)?.firstError;
  return {
    scenario: "connect",
    target: target.name,
    requested: options.count,
    held: heldCount,
    failed,
    ...(firstError ? { firstError } : {}),
    connectSeconds: Math.round(connectSeconds * 100) / 100,
    connectsPerSecond: Math.round(heldCount / connectSeconds),
    sourceAddresses: addresses,
    rssBeforeBytes: rssBefore,
    rssAfterBytes: rssAfter,
    rssPerConnectionBytes: heldCount > 0 ? Math.round((rssAfter - rssBefore) / heldCount) : 0,
    ...(rssRetained !== undefined && heldCount > 0
      ? { rssRetainedPerConnectionBytes: Math.round((rssRetained - rssBefore) / heldCount) }
      : {}),
    ok: heldCount === options.count,
  };
}

export interface LoginStormReport {
  scenario: "login-storm";
  target: string;
  users: number;
  loggedIn: number;
  connected: number;
  failed: number;
  firstError?: string;
  loginSeconds: number;
  loginsPerSecond: number;
  loginLatencyMs: Latency;
  connectsPerSecond: number;
  ok: boolean;
}

/** Users made once, then every one logs in through gate as fast as it answers, then connects. */
export async function runLoginStorm(
  target: Target,
  options: { users: number; concurrency?: number; onProgress?: (s: string) => void },
): Promise<LoginStormReport> {
  const gate = target.gate;
  if (!gate) throw new Error(`${target.name} has no gate: login-storm runs on shardchat`);
  const users = await gate.users(options.users);
  const client = new GateClient(gate.url);
  const histogram = newHistogram();
  let failed = 0;
  let firstError: string | undefined;
  const fail = (err: unknown) => {
    failed += 1;
    firstError ??= (err as Error).message;
  };
  const concurrency = options.concurrency ?? 32;
  let t0 = performance.now();
  const answers = (
    await inBatches(users, concurrency, async (u) => {
      const started = performance.now();
      try {
        const answer = await client.login(u.user, u.password);
        recordMs(histogram, performance.now() - started);
        return answer;
      } catch (err) {
        fail(err);
        return undefined;
      }
    })
  ).filter((a) => a !== undefined);
  const loginSeconds = (performance.now() - t0) / 1000;
  options.onProgress?.(`login-storm: ${answers.length} logged in, connecting`);
  t0 = performance.now();
  const clients = (
    await inBatches(answers, concurrency, (a) =>
      openChat(a, "tcp", { heartbeat: false }).catch((err: unknown) => {
        fail(err);
        return undefined;
      }),
    )
  ).filter((c) => c !== undefined);
  const connectSeconds = (performance.now() - t0) / 1000;
  await Promise.all(clients.map((c) => c.close()));
  return {
    scenario: "login-storm",
    target: target.name,
    users: options.users,
    loggedIn: answers.length,
    connected: clients.length,
    failed,
    ...(firstError ? { firstError } : {}),
    loginSeconds: Math.round(loginSeconds * 100) / 100,
    loginsPerSecond: Math.round(answers.length / loginSeconds),
    loginLatencyMs: latencyOf(mergeEncoded([encodeHistogram(histogram)])),
    connectsPerSecond: Math.round(clients.length / connectSeconds),
    ok: failed === 0 && clients.length === options.users,
  };
}
