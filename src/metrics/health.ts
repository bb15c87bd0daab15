import { connect } from "node:net";

/** One dependency a service needs to do its work (a database, Redis, a peer service). */
export interface Probe {
  name: string;
  /** Resolves when the dependency answers; rejects (or times out) when it does not. */
  check(): Promise<unknown>;
}

export interface Readiness {
  ready: boolean;
  checks: { name: string; ok: boolean; error?: string }[];
}

/** Runs every probe at once, each bounded by timeoutMs, so a hung dependency answers not-ready. */
export async function readiness(probes: Probe[], timeoutMs: number): Promise<Readiness> {
  const checks = await Promise.all(
    probes.map(async (probe) => {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          probe.check(),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs);
          }),
        ]);
        return { name: probe.name, ok: true };
      } catch (err) {
        return { name: probe.name, ok: false, error: err instanceof Error ? err.message : String(err) };
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  return { ready: checks.every((c) => c.ok), checks };
}

/** A dependency known only by its address: ready while it accepts a TCP connection. */
export function tcpProbe(name: string, hostPort: string): Probe {
  const at = hostPort.lastIndexOf(":");
  const host = hostPort.slice(0, at) || "127.0.0.1";
  const port = Number(hostPort.slice(at + 1));
  return {
    name,
    check: () =>
      new Promise<void>((resolve, reject) => {
        const socket = connect({ host, port });
        socket.once("connect", () => {
          socket.destroy();
          resolve();
        });
        socket.once("error", (err) => {
          socket.destroy();
          reject(err);
        });
      }),
  };
}
