/** Ports for the services tests and the load tool start: one way to pick them. */
import { createServer } from "node:net";

/**
 * Below the kernel's ephemeral range (32768-60999 here): a port found free there by listening
 * on port 0 can be taken by any outgoing connection (a MySQL or Redis client) before the
 * service that was meant to bind it starts. Each vitest worker gets its own block, so two
 * files running at once do not pick the same port either.
 */
const PORT_BLOCK = 3000;
const PORT_FLOOR = 20_000;
const handedOut = new Set<number>();

/** Whether 127.0.0.1:port can be bound right now. */
export function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** `port` when it is free (a port the docs name, such as 3309 for an added MariaDB), else a free one. */
export async function preferredPort(port: number): Promise<number> {
  return (await canListen(port)) ? port : freePort();
}

/** A port nothing listens on, for a service a test starts later; never the same twice in one process. */
export function freePort(): Promise<number> {
  return freePortRun(1);
}

/**
 * The first of `count` consecutive free ports (a stack's chat nodes take base + i), none of
 * them handed out before in this process, and none handed out again.
 */
export async function freePortRun(count: number): Promise<number> {
  const block = Number(process.env.VITEST_POOL_ID ?? 0) % 4;
  const start = PORT_FLOOR + block * PORT_BLOCK;
  for (let tries = 0; tries < PORT_BLOCK; tries++) {
    const first = start + Math.floor(Math.random() * (PORT_BLOCK - count));
    const run = Array.from({ length: count }, (_, i) => first + i);
    if (run.some((port) => handedOut.has(port))) continue;
    let free = true;
    for (const port of run) if (!(await canListen(port))) free = false;
    if (!free) continue;
    for (const port of run) handedOut.add(port);
    return first;
  }
  throw new Error(`no ${count} free ports in a row in ${start}-${start + PORT_BLOCK - 1}`);
}
