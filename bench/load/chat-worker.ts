/**
 * A worker thread of the chat-1to1 scenario: connects its pairs, sends at its share of the
 * rate (or keeps `window` sends in flight per sender), and checks what arrives. Both members
 * of a pair live in the same worker, so a conversation is checked by one DeliveryChecker.
 */
import { parentPort, workerData } from "node:worker_threads";
import { DeliveryChecker, decodeText, encodeText, nowMs } from "./checker.js";
import { connect, type LoadConn, type Ticket } from "./drivers.js";
import { encodeHistogram, newHistogram, recordMs } from "./histogram.js";

export interface ChatWorkerData {
  pairs: [Ticket, Ticket][];
  /** Messages per second per sender; 0: flat out with `window` in flight. */
  ratePerSender: number;
  window: number;
  size: number;
  /** Test hook: every Nth message received is handed to the checker twice (0: never). */
  duplicateEvery: number;
  /** Test hook: every Nth message received is not handed to the checker (0: never). */
  dropEvery: number;
  drainTimeoutMs: number;
}

export type ToWorker = { type: "start" } | { type: "stop" };
export type FromWorker =
  | { type: "ready"; connected: number }
  | { type: "progress"; acked: number; delivered: number; errors: number }
  | {
      type: "done";
      acked: number;
      delivered: number;
      errors: number;
      firstError?: string;
      summary: ReturnType<DeliveryChecker["summary"]>;
      histogram: string;
      ackHistogram: string;
      /** Stored ack → the peer's receipt, for each message with both (0 when the push came first). */
      ackToPushHistogram: string;
      /** Messages the peer received before their sender had the ack. */
      pushBeforeAck: number;
    }
  | { type: "failed"; error: string };

const data = workerData as ChatWorkerData;
const port = parentPort;
if (!port) throw new Error("chat-worker runs as a worker thread");
const post = (m: FromWorker) => port.postMessage(m);

const checker = new DeliveryChecker();
const histogram = newHistogram();
/** Send to the system's ack (for shardchat: stored), apart from the end-to-end figure. */
const ackHistogram = newHistogram();
/**
 * Ack → push: the sender's ack and the peer's receipt of one message are both seen here (both
 * members of a pair live in this worker, on one clock). Whichever comes first waits in `firstSeen`
 * ("<conversation>#<n>" → time, negative for a receipt) for the other.
 */
const ackToPushHistogram = newHistogram();
const firstSeen = new Map<string, number>();
let pushBeforeAck = 0;
let acked = 0;
let delivered = 0;
let errors = 0;
let firstError: string | undefined;
let received = 0;
let stopping = false;

function onReceive(to: string, from: string, text: string): void {
  const decoded = decodeText(text);
  if (!decoded) return;
  received += 1;
  if (data.dropEvery > 0 && received % data.dropEvery === 0) return;
  delivered += 1;
  const at = nowMs();
  recordMs(histogram, at - decoded.sentAtMs);
  const conv = `${from}>${to}`;
  const key = `${conv}#${decoded.n}`;
  const ackedAt = firstSeen.get(key);
  if (ackedAt !== undefined && ackedAt > 0) {
    firstSeen.delete(key);
    recordMs(ackToPushHistogram, at - ackedAt);
  } else if (ackedAt === undefined) firstSeen.set(key, -at);
  checker.received(conv, decoded.n);
  if (data.duplicateEvery > 0 && received % data.duplicateEvery === 0) checker.received(conv, decoded.n);
}

function sendOne(from: LoadConn, to: string): Promise<void> {
  const conv = `${from.id}>${to}`;
  const n = checker.nextToSend(conv);
  const sentAt = nowMs();
  return from.send(to, encodeText(n, sentAt, data.size)).then(
    () => {
      acked += 1;
      const at = nowMs();
      recordMs(ackHistogram, at - sentAt);
      const key = `${conv}#${n}`;
      const receivedAt = firstSeen.get(key);
      if (receivedAt !== undefined && receivedAt < 0) {
        // The peer had it before the sender had the ack: ack → push counts 0.
        firstSeen.delete(key);
        pushBeforeAck += 1;
        recordMs(ackToPushHistogram, 0);
      } else firstSeen.set(key, at);
    },
    (err: unknown) => {
      errors += 1;
      firstError ??= (err as Error).message;
    },
  );
}

async function run(): Promise<void> {
  const conns: [LoadConn, LoadConn][] = [];
  for (const [a, b] of data.pairs) {
    const ca = await connect(a);
    const cb = await connect(b);
    ca.onMessage((from, text) => onReceive(ca.id, from, text));
    cb.onMessage((from, text) => onReceive(cb.id, from, text));
    conns.push([ca, cb]);
  }
  post({ type: "ready", connected: conns.length * 2 });
  await new Promise<void>((resolve) =>
    port?.on("message", (m: ToWorker) => {
      if (m.type === "start") resolve();
      if (m.type === "stop") stopping = true;
    }),
  );
  const progress = setInterval(() => post({ type: "progress", acked, delivered, errors }), 500);
  const senders = conns.flatMap(([a, b]) => [
    { from: a, to: b.id },
    { from: b, to: a.id },
  ]);
  const lanes: Promise<void>[] = [];
  if (data.ratePerSender > 0) {
    // Open loop: messages leave when they are due, whatever the acks do, so a slow system shows
    // up as latency instead of a quietly lower offered rate.
    const started = nowMs();
    const sent = new Array<number>(senders.length).fill(0);
    // Each sender at its own random phase, as independent users are: all of them firing in the
    // same millisecond made every system queue a burst, and the burst, not the load, set p50.
    const phaseMs = senders.map(() => (Math.random() * 1000) / data.ratePerSender);
    const inFlight = new Set<Promise<void>>();
    await new Promise<void>((resolve) => {
      const tick = setInterval(() => {
        if (stopping) {
          clearInterval(tick);
          resolve();
          return;
        }
        const elapsedMs = nowMs() - started;
        senders.forEach((s, i) => {
          const due = Math.floor(((elapsedMs + (phaseMs[i] ?? 0)) / 1000) * data.ratePerSender);
          for (; (sent[i] ?? 0) < due; sent[i] = (sent[i] ?? 0) + 1) {
            const p = sendOne(s.from, s.to);
            inFlight.add(p);
            void p.finally(() => inFlight.delete(p));
          }
        });
      }, 5);
    });
    lanes.push(Promise.all(inFlight).then(() => undefined));
  } else {
    for (const s of senders)
      for (let w = 0; w < data.window; w++)
        lanes.push(
          (async () => {
            while (!stopping) await sendOne(s.from, s.to);
          })(),
        );
  }
  await Promise.all(lanes);
  // The tail: wait for what was acked to be delivered, up to drainTimeoutMs.
  const drainUntil = Date.now() + data.drainTimeoutMs;
  while (checker.outstanding() > 0 && Date.now() < drainUntil) await new Promise((r) => setTimeout(r, 50));
  clearInterval(progress);
  post({
    type: "done",
    acked,
    delivered,
    errors,
    ...(firstError ? { firstError } : {}),
    summary: checker.summary(),
    histogram: encodeHistogram(histogram),
    ackHistogram: encodeHistogram(ackHistogram),
    ackToPushHistogram: encodeHistogram(ackToPushHistogram),
    pushBeforeAck,
  });
  await Promise.all(conns.flat().map((c) => c.close().catch(() => undefined)));
}

run().catch((err: unknown) => post({ type: "failed", error: (err as Error).stack ?? String(err) }));
