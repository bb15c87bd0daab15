/**
 * A worker thread of the group-fanout scenario: holds its share of the group's members, lets
 * its senders post at their rate, and checks that every member gets every sender's messages
 * once and in order. Senders and receivers sit in different workers, so each sender's count is
 * handed to every worker at the end (expect) before the check is read.
 */
import { parentPort, workerData } from "node:worker_threads";
import { DeliveryChecker, decodeText, encodeText, nowMs } from "./checker.js";
import { connect, type LoadConn, type Ticket } from "./drivers.js";
import { encodeHistogram, newHistogram, recordMs } from "./histogram.js";

export interface GroupWorkerData {
  groupId: string;
  members: Ticket[];
  /** Which of `members` send (the rest only receive). */
  senders: string[];
  ratePerSender: number;
  size: number;
  drainTimeoutMs: number;
  duplicateEvery: number;
}
export type ToGroupWorker =
  | { type: "start" }
  | { type: "stop" }
  | { type: "expect"; sentBySender: Record<string, number>; allMembers: string[] };
export type FromGroupWorker =
  | { type: "ready" }
  | { type: "progress"; sent: number; delivered: number; errors: number }
  | { type: "sent"; sentBySender: Record<string, number>; errors: number; firstError?: string }
  | {
      type: "done";
      delivered: number;
      /** Delivered by the time the senders were told to stop. */
      deliveredWhileSending: number;
      /** From the stop to the last delivery here (0: nothing came after the stop). */
      drainMs: number;
      summary: ReturnType<DeliveryChecker["summary"]>;
      histogram: string;
    }
  | { type: "failed"; error: string };

const data = workerData as GroupWorkerData;
const port = parentPort;
if (!port) throw new Error("group-worker runs as a worker thread");
const post = (m: FromGroupWorker) => port.postMessage(m);

const checker = new DeliveryChecker();
const histogram = newHistogram();
const sentBySender: Record<string, number> = {};
let delivered = 0;
let received = 0;
let errors = 0;
let firstError: string | undefined;
let deliveredWhileSending: number | undefined;
let stoppedAt = 0;
let lastDeliveryAt = 0;

function onReceive(me: string, from: string, text: string): void {
  const decoded = decodeText(text);
  if (!decoded) return;
  delivered += 1;
  lastDeliveryAt = nowMs();
  received += 1;
  recordMs(histogram, nowMs() - decoded.sentAtMs);
  checker.received(`${from}>${me}`, decoded.n);
  if (data.duplicateEvery > 0 && received % data.duplicateEvery === 0) checker.received(`${from}>${me}`, decoded.n);
}

async function run(): Promise<void> {
  const conns: LoadConn[] = [];
  for (let i = 0; i < data.members.length; i += 64) {
    const batch = await Promise.all(data.members.slice(i, i + 64).map((t) => connect(t)));
    for (const c of batch) c.onMessage((from, text) => onReceive(c.id, from, text));
    conns.push(...batch);
  }
  const senders = conns.filter((c) => data.senders.includes(c.id));
  post({ type: "ready" });
  let stopping = false;
  let onExpect: (m: Extract<ToGroupWorker, { type: "expect" }>) => void = () => {};
  await new Promise<void>((resolve) =>
    port?.on("message", (m: ToGroupWorker) => {
      if (m.type === "start") resolve();
      else if (m.type === "stop") {
        stopping = true;
        stoppedAt = nowMs();
        deliveredWhileSending = delivered;
      } else if (m.type === "expect") onExpect(m);
    }),
  );
  const progress = setInterval(() => {
    const sent = Object.values(sentBySender).reduce((a, b) => a + b, 0);
    post({ type: "progress", sent, delivered, errors });
  }, 500);
  const inFlight = new Set<Promise<void>>();
  const started = nowMs();
  const count = new Array<number>(senders.length).fill(0);
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      if (stopping) {
        clearInterval(tick);
        resolve();
        return;
      }
      const due = Math.floor(((nowMs() - started) / 1000) * data.ratePerSender);
      senders.forEach((s, i) => {
        for (; (count[i] ?? 0) < due; count[i] = (count[i] ?? 0) + 1) {
          const n = (sentBySender[s.id] ?? 0) + 1;
          sentBySender[s.id] = n;
          const p = (s.sendGroup as NonNullable<LoadConn["sendGroup"]>)(data.groupId, encodeText(n, nowMs(), data.size))
            .catch((err: unknown) => {
              errors += 1;
              firstError ??= (err as Error).message;
            })
            .finally(() => inFlight.delete(p));
          inFlight.add(p);
        }
      });
    }, 5);
  });
  await Promise.all(inFlight);
  post({ type: "sent", sentBySender, errors, ...(firstError ? { firstError } : {}) });
  const expected = await new Promise<Extract<ToGroupWorker, { type: "expect" }>>((resolve) => {
    onExpect = resolve;
  });
  for (const c of conns)
    for (const [sender, total] of Object.entries(expected.sentBySender))
      if (sender !== c.id) checker.expectSent(`${sender}>${c.id}`, total);
  const drainUntil = Date.now() + data.drainTimeoutMs;
  while (checker.outstanding() > 0 && Date.now() < drainUntil) await new Promise((r) => setTimeout(r, 50));
  clearInterval(progress);
  post({
    type: "done",
    delivered,
    deliveredWhileSending: deliveredWhileSending ?? delivered,
    drainMs: stoppedAt > 0 && lastDeliveryAt > stoppedAt ? lastDeliveryAt - stoppedAt : 0,
    summary: checker.summary(),
    histogram: encodeHistogram(histogram),
  });
  for (let i = 0; i < conns.length; i += 500)
    await Promise.all(conns.slice(i, i + 500).map((c) => c.close().catch(() => undefined)));
}

run().catch((err: unknown) => post({ type: "failed", error: (err as Error).stack ?? String(err) }));
