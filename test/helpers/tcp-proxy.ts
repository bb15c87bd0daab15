import { connect, createServer, type Server, type Socket } from "node:net";

/**
 * A TCP proxy in front of one service, for fault injection: `delayMs` holds every chunk that
 * long in each direction (a slow network), `cut()` drops every connection and refuses new ones
 * (the service unreachable), `heal()` accepts again. The port stays the same throughout.
 */
export interface TcpProxy {
  port: number;
  delayMs: number;
  /** Bytes relayed from clients to the service so far (set it to 0 to count afresh). */
  sent: number;
  cut(): Promise<void>;
  heal(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(targetHost: string, targetPort: number, listenPort = 0): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let server: Server | undefined;

  const relay = (from: Socket, to: Socket) => {
    from.on("data", (chunk) => {
      if (proxy.delayMs <= 0) to.write(chunk);
      else setTimeout(() => to.writable && to.write(chunk), proxy.delayMs);
    });
    from.on("end", () => setTimeout(() => to.end(), proxy.delayMs));
  };

  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      const s = createServer((client) => {
        const upstream = connect({ host: targetHost, port: targetPort });
        for (const socket of [client, upstream]) {
          sockets.add(socket);
          socket.on("close", () => sockets.delete(socket));
          socket.on("error", () => {
            client.destroy();
            upstream.destroy();
          });
        }
        client.on("data", (chunk: Buffer) => {
          proxy.sent += chunk.length;
        });
        relay(client, upstream);
        relay(upstream, client);
      });
      s.once("error", reject);
      s.listen(port, "127.0.0.1", () => {
        server = s;
        const address = s.address();
        resolve(typeof address === "object" && address ? address.port : port);
      });
    });

  const stop = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      if (!server) return resolve();
      server.close(() => resolve());
      server = undefined;
    });

  const proxy: TcpProxy = {
    port: await listen(listenPort),
    delayMs: 0,
    sent: 0,
    cut: stop,
    async heal() {
      if (!server) await listen(proxy.port);
    },
    close: stop,
  };
  return proxy;
}
