/**
 * The chat-1to1 scenario as a function other code can run (the bench, fault-injection and
 * scaling tests): start it on a set of pairs, let it run, stop it and read the report,
 * including the exactly-once, in-order check.
 *
 *   const load = await startChatLoad({ pairs, rate: 500 });
 *   ...                       // kill a node, add one, whatever the test is about
 *   const report = await load.stop();
 *   expect(report.check.ok).toBe(true);
 */
import type { Worker } from "node:worker_threads";
import type { ChatWorkerData, FromWorker, ToWorker } from "./chat-worker.js";
import { type CheckSummary, mergeSummaries } from "./checker.js";
import type { Ticket } from "./drivers.js";
import { type Latency, latencyOf, mergeEncoded } from "./histogram.js";
import { tsWorker } from "./ts-worker.js";

export interface ChatLoadOptions {
  /** Who talks to whom: both members of a pair send to each other. */
  pairs: [Ticket, Ticket][];
  /** Messages per second offered in total over every sender; 0 or absent: flat out. */
  rate?: number;
  /** Flat out: sends in flight per sender (default 8). */
  window?: number;
  /** Characters per message text (default 64). */
  size?: number;
  /** Worker threads generating the load (default: 2, never more than the pairs). */
  workers?: number;
  /** After stop, how long to wait for acked messages to arrive (default 10 s). */
  drainTimeoutMs?: number;
  /** Called about twice a second while running. */
  onProgress?: (p: { elapsedMs: number; acked: number; delivered: number; errors: number }) => void;
  /** Awaited once every connection is up, just before the load starts (e.g. to read counters). */
  onReady?: () => Promise<void>;
  /** Test hooks: make the receiving side report a duplicate or lose a message every N receipts. */
  faults?: { duplicateEvery?: number; dropEvery?: number };
}

export interface ChatLoadReport {
  scenario: "chat-1to1";
  pairs: number;
  offeredRate: number | "max";
  seconds: number;
  acked: number;
  delivered: number;
  ackedPerSecond: number;
  deliveredPerSecond: number;
  sendErrors: number;
  firstError?: string;
  /** Send to the peer's receipt. */
  latencyMs: Latency;
  /** Send to the sender's ack (for shardchat: the message is stored). */
  ackLatencyMs: Latency;
  /**
   * The sender's ack to the peer's receipt (the push), per message with both; a push that came
   * before the ack counts 0 and is counted in `pushBeforeAck`.
   */
  ackToPushMs: Latency;
  pushBeforeAck: number;
  check: CheckSummary;
}

export interface ChatLoad {
  stop(): Promise<ChatLoadReport>;
}

const workerUrl = new URL("./chat-worker.ts", import.meta.url);

export async function startChatLoad(options: ChatLoadOptions): Promise<ChatLoad> {
  const workerCount = Math.max(1, Math.min(options.workers ?? 2, options.pairs.length));
  const senders = options.pairs.length * 2;
  const shares: [Ticket, Ticket][][] = Array.from({ length: workerCount }, () => []);
  options.pairs.forEach((p, i) => {
    shares[i % workerCount]?.push(p);
  });
  const progress = shares.map(() => ({ acked: 0, delivered: 0, errors: 0 }));
  const done: Extract<FromWorker, { type: "done" }>[] = [];
  const finishedOf = new Map<Worker, Promise<void>>();

  const workers = shares.map((pairs, i) => {
    const data: ChatWorkerData = {
      pairs,
      ratePerSender: (options.rate ?? 0) / senders,
      window: options.window ?? 8,
      size: options.size ?? 64,
      duplicateEvery: options.faults?.duplicateEvery ?? 0,
      dropEvery: options.faults?.dropEvery ?? 0,
      drainTimeoutMs: options.drainTimeoutMs ?? 10_000,
    };
    const worker = tsWorker(workerUrl, { workerData: data });
    const ready = new Promise<void>((resolve, reject) => {
      const finished = new Promise<void>((resolveDone, rejectDone) => {
        worker.on("message", (m: FromWorker) => {
          if (m.type === "ready") resolve();
          else if (m.type === "progress") progress[i] = m;
          else if (m.type === "done") {
            done[i] = m;
            resolveDone();
          } else if (m.type === "failed") {
            reject(new Error(`load worker ${i}: ${m.error}`));
            rejectDone(new Error(`load worker ${i}: ${m.error}`));
          }
        });
        worker.on("error", (err) => {
          reject(err);
          rejectDone(err);
        });
      });
      finishedOf.set(worker, finished);
    });
    return { worker, ready };
  });
  const tell = (m: ToWorker) => {
    for (const w of workers) w.worker.postMessage(m);
  };
  try {
    await Promise.all(workers.map((w) => w.ready));
  } catch (err) {
    await Promise.all(workers.map((w) => w.worker.terminate()));
    throw err;
  }

  if (options.onReady) {
    try {
      await options.onReady();
    } catch (err) {
      await Promise.all(workers.map((w) => w.worker.terminate()));
      throw err;
    }
  }
  const started = performance.now();
  tell({ type: "start" });
  const ticker = setInterval(() => {
    const sum = (k: "acked" | "delivered" | "errors") => progress.reduce((a, p) => a + p[k], 0);
    options.onProgress?.({
      elapsedMs: performance.now() - started,
      acked: sum("acked"),
      delivered: sum("delivered"),
      errors: sum("errors"),
    });
  }, 500);

  return {
    async stop() {
      const stoppedAt = performance.now();
      tell({ type: "stop" });
      try {
        await Promise.all(workers.map((w) => finishedOf.get(w.worker)));
      } finally {
        clearInterval(ticker);
        await Promise.all(workers.map((w) => w.worker.terminate()));
      }
      const seconds = (stoppedAt - started) / 1000;
      const acked = done.reduce((a, d) => a + d.acked, 0);
      const delivered = done.reduce((a, d) => a + d.delivered, 0);
      const firstError = done.find((d) => d.firstError)?.firstError;
      return {
        scenario: "chat-1to1",
        pairs: options.pairs.length,
        offeredRate: options.rate ? options.rate : "max",
        seconds: Math.round(seconds * 100) / 100,
        acked,
        delivered,
        // Counted over the sending time: what was in flight at the stop lands in the drain.
        ackedPerSecond: Math.round(acked / seconds),
        deliveredPerSecond: Math.round(delivered / seconds),
        sendErrors: done.reduce((a, d) => a + d.errors, 0),
        ...(firstError ? { firstError } : {}),
        latencyMs: latencyOf(mergeEncoded(done.map((d) => d.histogram))),
        ackLatencyMs: latencyOf(mergeEncoded(done.map((d) => d.ackHistogram))),
        ackToPushMs: latencyOf(mergeEncoded(done.map((d) => d.ackToPushHistogram))),
        pushBeforeAck: done.reduce((a, d) => a + d.pushBeforeAck, 0),
        check: mergeSummaries(done.map((d) => d.summary)),
      };
    },
  };
}

/** Runs the scenario for `seconds` and answers its report. */
export async function runChatLoad(options: ChatLoadOptions & { seconds: number }): Promise<ChatLoadReport> {
  const load = await startChatLoad(options);
  await new Promise((r) => setTimeout(r, options.seconds * 1000));
  return load.stop();
}
