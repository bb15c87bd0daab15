import { type AddressInfo, createServer } from "node:net";
import type { RowDataPacket } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/config/settings.js";
import { AppError, ErrorCode } from "../src/errors.js";
import { uidOf } from "../src/ids/identifiers.js";
import { MysqlMessageStore } from "../src/storage/mysql/message-store.js";
import { migrate } from "../src/storage/mysql/migrate.js";
import { createPool, type Pool } from "../src/storage/mysql/pool.js";
import { dropTestDatabase, testConfig } from "./helpers/env.js";
import { textMessage } from "./helpers/messages.js";
import { startTcpProxy, type TcpProxy } from "./helpers/tcp-proxy.js";

// MariaDB behind a proxy that can hold every byte (a frozen instance, as SIGSTOP makes one):
// every wait on it ends at its setting, and the pool serves again once the instance answers.
let config: Config;
let proxy: TcpProxy;
let pool: Pool;

const code = (err: unknown) => (err instanceof AppError ? err.code : (err as { code?: string }).code);
const failure = (work: Promise<unknown>) =>
  work.then(
    () => "answered",
    (err: unknown) => code(err),
  );

beforeAll(async () => {
  config = testConfig();
  await migrate(config.MYSQL_URL);
  const url = new URL(config.MYSQL_URL);
  proxy = await startTcpProxy(url.hostname, Number(url.port || 3306));
  url.port = String(proxy.port);
  pool = createPool({
    MYSQL_URL: url.toString(),
    MYSQL_POOL_SIZE: 1,
    MYSQL_QUERY_TIMEOUT_MS: 1000,
    MYSQL_ACQUIRE_TIMEOUT_MS: 300,
    MYSQL_CONNECT_TIMEOUT_MS: 1000,
  });
  await pool.query("SELECT 1");
});

afterAll(async () => {
  await pool?.end().catch(() => undefined);
  await proxy?.close();
  await dropTestDatabase(config);
});

describe("MySQL waits are bounded (MYSQL_QUERY_TIMEOUT_MS, MYSQL_ACQUIRE_TIMEOUT_MS)", () => {
  it("a frozen instance fails the statement, and the caller waiting for the connection, instead of holding them", async () => {
    proxy.delayMs = 60_000;
    const began = Date.now();
    // One connection: the first statement takes it and waits for its answer, the second waits for it.
    const [first, second] = await Promise.all([failure(pool.query("SELECT 1")), failure(pool.query("SELECT 2"))]);
    expect(first).toBe("PROTOCOL_SEQUENCE_TIMEOUT");
    expect(second).toBe("POOL_ACQUIRE_TIMEOUT");
    // Bounded by the settings (1 s), far inside the 60 s the instance holds its answers.
    expect(Date.now() - began).toBeLessThan(15_000);

    // Through a store it is the chat protocol's code; nothing is stored, nobody waits for long.
    const store = new MysqlMessageStore(pool);
    const append = store.append(
      textMessage("1001", "1002", "frozen", { msgId: "77001", clientMsgId: "frozen-1", sentAtMs: Date.now() }),
    );
    expect(await failure(append)).toBe(ErrorCode.STORAGE_UNAVAILABLE);

    // The instance answers again: the connection that timed out was dropped, a new one serves.
    proxy.delayMs = 0;
    await proxy.cut();
    await proxy.heal();
    const [rows] = await pool.query<RowDataPacket[]>("SELECT 41 + 1 AS n");
    expect(rows[0]?.n).toBe(42);
  }, 30_000);

  it("a batch that fails because the instance does not answer fails whole, not again item by item", async () => {
    // An "instance" that accepts each connection and drops it at once: count the attempts.
    let attempts = 0;
    const dropper = createServer((socket) => {
      attempts++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => dropper.listen(0, "127.0.0.1", resolve));
    const port = (dropper.address() as AddressInfo).port;
    const dead = createPool({ MYSQL_URL: `mysql://root@127.0.0.1:${port}/nowhere`, MYSQL_POOL_SIZE: 1 });
    try {
      // One batch in flight: the first append goes alone, the next four wait and go together.
      const store = new MysqlMessageStore(dead, { batchMax: 8, batchConcurrency: 1 });
      const outcomes = await Promise.all(
        [1, 2, 3, 4, 5].map((i) =>
          failure(
            store.append(
              textMessage(uidOf(2000 + i), "3000", `m${i}`, {
                msgId: uidOf(88000 + i),
                clientMsgId: `dead-${i}`,
                sentAtMs: 1,
              }),
            ),
          ),
        ),
      );
      expect(outcomes).toEqual(Array(5).fill(ErrorCode.STORAGE_UNAVAILABLE));
      // One connection attempt per batch; one by one would have made seven.
      expect(attempts).toBe(2);
    } finally {
      await dead.end().catch(() => undefined);
      await new Promise((resolve) => dropper.close(resolve));
    }
  });
});
