/** The connect and login-storm scenarios (chat-1to1 is in chat.ts). */
import { GateClient, openChat } from "@shardchat/sdk";
import type { ConnectWorkerData, FromConnectWorker } from "./connect-worker.js";
import type { Ticket } from "./drivers.js";
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
   * Growth per connection of the second half, RSS read after a full GC in each of those
   * processes with half and with all of them held: what a connection retains, without the
   * garbage of logins V8 has not collected yet, nor what a fresh process releases later.
   * Undefined when the processes could not be reached through the inspector.
   */
  rssRetainedPerConnectionBytes?: number;
  ok: boolean;
}

const connectWorkerUrl = new URL("./connect-worker.ts", import.meta.url);

/** Loopback source addresses for `count` connections, `perAddress` each (127.0.0.2 and up). */
function sourceAddresses(count: number, perAddress: number): string[] {
  return Array.from({ length: Math.ceil(count / perAddress) }, (_, i) => `127.0.0.${i + 2}`);
}

/**
 * Opens `count` idle, heart-beating connections, measures, and closes them. They open in two
 * halves: after each, a full GC in every connection-holding process and a read of RSS, so the
 * second half's growth is what connections retain, in processes past their start-up.
 */
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
  const addresses = sourceAddresses(options.count, perAddress);
  const pids = target.connectionPids();
  const rss = () => pids.reduce((sum, pid) => sum + rssOf(pid), 0);
  const afterGc = () =>
    fullGc(pids).then(rss, (err: unknown) => {
      options.onProgress?.(`no full GC: ${(err as Error).message}`);
      return undefined;
    });
  const rssBefore = rss();
  const workerCount = Math.max(1, Math.min(options.workers ?? 2, options.count));
  const half = Math.floor(tickets.length / 2);
  let connectMs = 0;
  const open = async (from: number, to: number) => {
    const started = performance.now();
    const opened = await openConnections(tickets.slice(from, to), from, {
      workers: workerCount,
      addresses,
      perAddress,
      concurrency: options.concurrency ?? 64,
      onProgress: (c, f) => options.onProgress?.(`connect: ${from + c}/${options.count} held, ${f} failed`),
    });
    connectMs += performance.now() - started;
    return opened;
  };
  const first = await open(0, half);
  const rssHalfHeld = await afterGc();
  const second = await open(half, tickets.length);
  // Let heartbeats and lazily grown buffers settle before reading memory.
  await new Promise((r) => setTimeout(r, options.holdMs ?? 2000));
  const rssAfter = rss();
  const rssAllHeld = rssHalfHeld === undefined ? undefined : await afterGc();
  await Promise.all([first.close(), second.close()]);
  const held = [...first.held, ...second.held];
  const connectSeconds = connectMs / 1000;
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
    ...(rssHalfHeld !== undefined && rssAllHeld !== undefined && second.connected > 0
      ? { rssRetainedPerConnectionBytes: Math.round((rssAllHeld - rssHalfHeld) / second.connected) }
      : {}),
    ok: heldCount === options.count,
  };
}

/**
 * Opens `count` idle, heart-beating connections and keeps them until close() (a soak's
 * background crowd): how many are held and how many failed to open.
 */
export async function holdConnections(
  target: Target,
  count: number,
  onProgress?: (s: string) => void,
): Promise<{ held: number; failed: number; close(): Promise<void> }> {
  const perAddress = PER_SOURCE_ADDRESS;
  const tickets = await target.tickets(count);
  const addresses = sourceAddresses(count, perAddress);
  const opened = await openConnections(tickets, 0, {
    workers: 2,
    addresses,
    perAddress,
    concurrency: 64,
    onProgress: (c, f) => onProgress?.(`connect: ${c}/${count} held, ${f} failed`),
  });
  return {
    held: opened.held.reduce((a, h) => a + h.connected, 0),
    failed: opened.held.reduce((a, h) => a + h.failed, 0),
    close: () => opened.close(),
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

/** Connections opened by connect workers, held until close(). */
async function openConnections(
  tickets: Ticket[],
  offset: number,
  o: {
    workers: number;
    addresses: string[];
    perAddress: number;
    concurrency: number;
    onProgress: (connected: number, failed: number) => void;
  },
): Promise<{ held: Extract<FromConnectWorker, { type: "held" }>[]; connected: number; close(): Promise<void> }> {
  const workerCount = Math.max(1, Math.min(o.workers, tickets.length));
  const share = Math.ceil(tickets.length / workerCount);
  const progress = new Array<{ connected: number; failed: number }>(workerCount).fill({ connected: 0, failed: 0 });
  const ticker = setInterval(() => {
    o.onProgress(
      progress.reduce((a, p) => a + p.connected, 0),
      progress.reduce((a, p) => a + p.failed, 0),
    );
  }, 500);
  const workers = Array.from({ length: workerCount }, (_, w) => {
    const data: ConnectWorkerData = {
      tickets: tickets.slice(w * share, (w + 1) * share),
      localAddresses: o.addresses,
      perAddress: o.perAddress,
      offset: offset + w * share,
      concurrency: o.concurrency,
    };
    return tsWorker(connectWorkerUrl, { workerData: data });
  });
  try {
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
    return {
      held,
      connected: held.reduce((a, h) => a + h.connected, 0),
      async close() {
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
      },
    };
  } finally {
    clearInterval(ticker);
  }
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
