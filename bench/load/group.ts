/**
 * The group-fanout scenario: one group of G members spread over the chat nodes (where the ring
 * puts them), S of them posting at a rate; measures deliveries per second and the latency from
 * a post to each member's receipt, and checks that every member gets every post once, in order.
 */
import type { Worker } from "node:worker_threads";
import { ChatClient } from "@shardchat/sdk";
import { type CheckSummary, mergeSummaries } from "./checker.js";
import type { Ticket } from "./drivers.js";
import type { FromGroupWorker, GroupWorkerData, ToGroupWorker } from "./group-worker.js";
import { type Latency, latencyOf, mergeEncoded } from "./histogram.js";
import { tsWorker } from "./ts-worker.js";

export interface GroupLoadOptions {
  /** The members; the first creates the group. shardchat tickets only. */
  members: Ticket[];
  /** How many members post (default 1). */
  senders?: number;
  /** Group messages per second over all senders (default 2). */
  rate?: number;
  size?: number;
  workers?: number;
  drainTimeoutMs?: number;
  onProgress?: (p: { elapsedMs: number; sent: number; delivered: number; errors: number }) => void;
  /** Awaited once every member is connected, just before the posts start (e.g. to read counters). */
  onReady?: () => Promise<void>;
  /** Test hook: every Nth receipt is handed to the checker twice. */
  faults?: { duplicateEvery?: number };
}

export interface GroupLoadReport {
  scenario: "group-fanout";
  members: number;
  nodes: number;
  senders: number;
  offeredRate: number;
  seconds: number;
  sent: number;
  delivered: number;
  /** Delivered over the posting time, the drain's included (as before). */
  deliveriesPerSecond: number;
  /** What the posts ask for: (members - 1) x posts/s. */
  offeredDeliveriesPerSecond: number;
  /** Delivered before the stop, over the posting time: compare with the offered figure. */
  deliveredWhileSendingPerSecond: number;
  /** Deliveries the posts made ask for: (members - 1) x posts sent. */
  deliveriesOwed: number;
  /** Of those, delivered before the stop (the last posts' deliveries may still be on their way then). */
  deliveredWhileSending: number;
  /** From the stop to the last delivery: a system that keeps up needs about one latency. */
  drainSeconds: number;
  sendErrors: number;
  firstError?: string;
  /** Post to each member's receipt. */
  latencyMs: Latency;
  check: CheckSummary;
}

const workerUrl = new URL("./group-worker.ts", import.meta.url);

async function createGroup(owner: Ticket, members: Ticket[]): Promise<string> {
  if (owner.kind !== "shardchat") throw new Error("group-fanout runs on shardchat");
  const client = await ChatClient.connect({ transport: "tcp", host: owner.host, port: owner.port });
  try {
    await client.login(owner.id, owner.token);
    const group = await client.createGroup(
      `load-${Date.now().toString(36)}`,
      members.filter((m) => m.id !== owner.id).map((m) => m.id),
    );
    return group.groupId;
  } finally {
    await client.close();
  }
}

export async function startGroupLoad(options: GroupLoadOptions): Promise<{ stop(): Promise<GroupLoadReport> }> {
  const [owner] = options.members;
  if (!owner) throw new Error("no members");
  const groupId = await createGroup(owner, options.members);
  const senderCount = Math.max(1, options.senders ?? 1);
  const senders = options.members.slice(0, senderCount).map((m) => m.id);
  const workerCount = Math.max(1, Math.min(options.workers ?? 2, options.members.length));
  const shares: Ticket[][] = Array.from({ length: workerCount }, () => []);
  options.members.forEach((m, i) => {
    shares[i % workerCount]?.push(m);
  });
  const rate = options.rate ?? 2;
  const progress = shares.map(() => ({ sent: 0, delivered: 0, errors: 0 }));
  const sent: Extract<FromGroupWorker, { type: "sent" }>[] = [];
  const done: Extract<FromGroupWorker, { type: "done" }>[] = [];
  const waiters = new Map<Worker, { sent: Promise<void>; done: Promise<void>; ready: Promise<void> }>();

  const workers = shares.map((members, i) => {
    const data: GroupWorkerData = {
      groupId,
      members,
      senders,
      ratePerSender: rate / senderCount,
      size: options.size ?? 64,
      drainTimeoutMs: options.drainTimeoutMs ?? 10_000,
      duplicateEvery: options.faults?.duplicateEvery ?? 0,
    };
    const worker = tsWorker(workerUrl, { workerData: data });
    const on = (type: FromGroupWorker["type"]) =>
      new Promise<void>((resolve, reject) => {
        worker.on("message", (m: FromGroupWorker) => {
          if (m.type === type) resolve();
          if (m.type === "failed") reject(new Error(`group worker ${i}: ${m.error}`));
        });
        worker.once("error", reject);
      });
    worker.on("message", (m: FromGroupWorker) => {
      if (m.type === "progress") progress[i] = m;
      else if (m.type === "sent") sent[i] = m;
      else if (m.type === "done") done[i] = m;
    });
    waiters.set(worker, { ready: on("ready"), sent: on("sent"), done: on("done") });
    return worker;
  });
  const tell = (m: ToGroupWorker) => {
    for (const w of workers) w.postMessage(m);
  };
  const all = (k: "ready" | "sent" | "done") => Promise.all(workers.map((w) => waiters.get(w)?.[k]));
  try {
    await all("ready");
    await options.onReady?.();
  } catch (err) {
    await Promise.all(workers.map((w) => w.terminate()));
    throw err;
  }
  const started = performance.now();
  tell({ type: "start" });
  const ticker = setInterval(() => {
    const sum = (k: "sent" | "delivered" | "errors") => progress.reduce((a, p) => a + p[k], 0);
    options.onProgress?.({
      elapsedMs: performance.now() - started,
      sent: sum("sent"),
      delivered: sum("delivered"),
      errors: sum("errors"),
    });
  }, 500);

  return {
    async stop() {
      const stoppedAt = performance.now();
      try {
        tell({ type: "stop" });
        await all("sent");
        const sentBySender: Record<string, number> = {};
        for (const s of sent) Object.assign(sentBySender, s.sentBySender);
        tell({ type: "expect", sentBySender, allMembers: options.members.map((m) => m.id) });
        await all("done");
      } finally {
        clearInterval(ticker);
        await Promise.all(workers.map((w) => w.terminate()));
      }
      const seconds = (stoppedAt - started) / 1000;
      const delivered = done.reduce((a, d) => a + d.delivered, 0);
      const deliveredWhileSending = done.reduce((a, d) => a + d.deliveredWhileSending, 0);
      const posts = sent.reduce((a, s) => a + Object.values(s.sentBySender).reduce((x, y) => x + y, 0), 0);
      const firstError = sent.find((s) => s.firstError)?.firstError;
      return {
        scenario: "group-fanout",
        members: options.members.length,
        nodes: new Set(options.members.map((m) => m.node)).size,
        senders: senderCount,
        offeredRate: rate,
        seconds: Math.round(seconds * 100) / 100,
        sent: posts,
        delivered,
        deliveriesPerSecond: Math.round(delivered / seconds),
        offeredDeliveriesPerSecond: Math.round((options.members.length - 1) * rate),
        deliveredWhileSendingPerSecond: Math.round(deliveredWhileSending / seconds),
        deliveriesOwed: (options.members.length - 1) * posts,
        deliveredWhileSending,
        drainSeconds: Math.round(Math.max(0, ...done.map((d) => d.drainMs)) / 10) / 100,
        sendErrors: sent.reduce((a, s) => a + s.errors, 0),
        ...(firstError ? { firstError } : {}),
        latencyMs: latencyOf(mergeEncoded(done.map((d) => d.histogram))),
        check: mergeSummaries(done.map((d) => d.summary)),
      };
    },
  };
}
