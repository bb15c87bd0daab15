/**
 * Reference 2: what many teams pick instead: Socket.IO with @socket.io/redis-adapter, one
 * copy per process, a room per user id. A message is acked once it is handed to the adapter
 * (published on Redis); nothing is stored.
 */
import { createAdapter } from "@socket.io/redis-adapter";
import { Redis } from "ioredis";
import { Server } from "socket.io";

const port = Number(process.env.PORT ?? 0);
const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const pub = new Redis(redisUrl);
const sub = pub.duplicate();
const io = new Server({ transports: ["websocket"], perMessageDeflate: false });
io.adapter(createAdapter(pub, sub, { key: `sc-bench-sio-${process.ppid}` }));

io.on("connection", (socket) => {
  const id = String(socket.handshake.query.id ?? "");
  socket.join(id);
  socket.emit("ready");
  socket.on("msg", (m: { to: string; text: string }, ack?: () => void) => {
    io.to(m.to).emit("msg", { from: id, text: m.text });
    ack?.();
  });
});
io.listen(port);
console.log(`listening ${port}`);
process.on("SIGTERM", () => {
  io.close();
  pub.disconnect();
  sub.disconnect();
  process.exit(0);
});
