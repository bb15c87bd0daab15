/** A worker thread of the connect scenario: opens its share of idle connections and holds them. */
import { parentPort, workerData } from "node:worker_threads";
import { connect, type LoadConn, type Ticket } from "./drivers.js";

export interface ConnectWorkerData {
  tickets: Ticket[];
  /** Source addresses to spread over, each used for `perAddress` connections. */
  localAddresses: string[];
  perAddress: number;
  /** Index of this worker's first connection overall (picks the source address). */
  offset: number;
  concurrency: number;
}
export type FromConnectWorker =
  | { type: "progress"; connected: number; failed: number }
  | { type: "held"; connected: number; failed: number; firstError?: string }
  | { type: "closed" };

const data = workerData as ConnectWorkerData;
const port = parentPort;
if (!port) throw new Error("connect-worker runs as a worker thread");

const conns: LoadConn[] = [];
let failed = 0;
let firstError: string | undefined;
let next = 0;
const progress = setInterval(() => port.postMessage({ type: "progress", connected: conns.length, failed }), 500);

async function lane(): Promise<void> {
  while (next < data.tickets.length) {
    const i = next++;
    const ticket = data.tickets[i] as Ticket;
    const overall = data.offset + i;
    const localAddress = data.localAddresses[Math.floor(overall / data.perAddress) % data.localAddresses.length];
    try {
      conns.push(await connect(ticket, localAddress ? { localAddress } : {}));
    } catch (err) {
      failed += 1;
      firstError ??= (err as Error).message;
    }
  }
}

await Promise.all(Array.from({ length: data.concurrency }, lane));
clearInterval(progress);
port.postMessage({ type: "held", connected: conns.length, failed, ...(firstError ? { firstError } : {}) });
port.once("message", async () => {
  for (let i = 0; i < conns.length; i += 500)
    await Promise.all(conns.slice(i, i + 500).map((c) => c.close().catch(() => undefined)));
  port.postMessage({ type: "closed" });
});
