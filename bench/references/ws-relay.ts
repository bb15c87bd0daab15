/**
 * Reference 1: a plain WebSocket relay (the `ws` package), no storage, no routing between
 * processes: the machine's practical ceiling for moving a message from one socket to another.
 * Wire: connect with ?id=<id>; send {t: to, m: text, r: n}; the peer gets {f: from, m: text},
 * the sender {a: n}.
 */
import { type WebSocket, WebSocketServer } from "ws";

const port = Number(process.env.PORT ?? 0);
const sockets = new Map<string, WebSocket>();
const wss = new WebSocketServer({ host: "127.0.0.1", port, perMessageDeflate: false });

wss.on("connection", (ws, req) => {
  const id = new URL(req.url ?? "/", "http://x").searchParams.get("id") ?? "";
  sockets.set(id, ws);
  ws.on("message", (data) => {
    let msg: { t?: string; m?: string; r?: number };
    try {
      msg = JSON.parse(data.toString());
    } catch {
      return;
    }
    sockets.get(msg.t ?? "")?.send(JSON.stringify({ f: id, m: msg.m }));
    ws.send(JSON.stringify({ a: msg.r }));
  });
  ws.on("close", () => {
    if (sockets.get(id) === ws) sockets.delete(id);
  });
});
wss.on("listening", () => console.log(`listening ${port}`));
process.on("SIGTERM", () => wss.close(() => process.exit(0)));
