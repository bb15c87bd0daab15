/**
 * A full garbage collection in other Node processes, through the inspector each opens on
 * SIGUSR1 (127.0.0.1:9229, one process at a time): the idle-connection scenario reads RSS after
 * it, so that what connections retain is told apart from garbage V8 has not collected yet (a
 * login burst leaves tens of KB per connection that the next major GC frees).
 */
import { setTimeout as sleep } from "node:timers/promises";
import WebSocket from "ws";
import { waitFor } from "../../test/helpers/processes.js";

const INSPECTOR = "http://127.0.0.1:9229/json/list";
const WAIT_MS = 5000;

export async function fullGc(pids: number[]): Promise<void> {
  for (const pid of pids) await collect(pid);
}

async function collect(pid: number): Promise<void> {
  process.kill(pid, "SIGUSR1");
  const target = await waitFor(
    `the inspector of ${pid}`,
    async () =>
      ((await (await fetch(INSPECTOR)).json()) as { webSocketDebuggerUrl?: string }[])[0]?.webSocketDebuggerUrl,
    WAIT_MS,
  );
  const ws = new WebSocket(target);
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  let lastId = 0;
  const call = (method: string, params: object = {}) =>
    new Promise<void>((resolve) => {
      const id = ++lastId;
      const onMessage = (data: WebSocket.RawData) => {
        if ((JSON.parse(data.toString()) as { id?: number }).id !== id) return;
        ws.off("message", onMessage);
        resolve();
      };
      ws.on("message", onMessage);
      ws.send(JSON.stringify({ id, method, params }));
    });
  // Twice: the first can leave objects that weak callbacks free only in the next.
  await call("HeapProfiler.collectGarbage");
  await call("HeapProfiler.collectGarbage");
  // Closes the inspector again, so the port is free for the next process. The process closes
  // this socket itself; closing it from here while it ends the inspector can crash it.
  const closed = new Promise((resolve) => ws.once("close", resolve));
  ws.send(JSON.stringify({ id: ++lastId, method: "Runtime.evaluate", params: { expression: "process._debugEnd()" } }));
  await Promise.race([closed, sleep(WAIT_MS)]);
  await waitFor(
    `the inspector of ${pid} to close`,
    () =>
      fetch(INSPECTOR).then(
        () => undefined,
        () => true,
      ),
    WAIT_MS,
  );
}
