import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AppError, ErrorCode } from "../src/errors.js";
import type { Uid } from "../src/ids/identifiers.js";
import { migrate } from "../src/storage/mysql/migrate.js";
import { createPool } from "../src/storage/mysql/pool.js";
import { MysqlUserStore } from "../src/storage/mysql/user-store.js";
import type { UserRecord, UserStore } from "../src/storage/ports.js";
import { SqliteUserStore } from "../src/storage/sqlite/user-store.js";
import { dropTestDatabase, testConfig } from "./helpers/env.js";
import { freePort } from "./helpers/ports.js";
import { tempSqlite } from "./helpers/sqlite.js";

interface OpenedStore {
  store: UserStore;
  close(): Promise<void>;
}

interface Backend {
  name: string;
  open(): Promise<OpenedStore>;
  /** A store whose database cannot answer (unreachable server, closed file). */
  unavailable(): Promise<OpenedStore>;
}

const backends: Backend[] = [
  {
    name: "mysql",
    async open() {
      const config = testConfig();
      await migrate(config.MYSQL_URL);
      const pool = createPool(config);
      return {
        store: new MysqlUserStore(pool),
        async close() {
          await pool.end();
          await dropTestDatabase(config);
        },
      };
    },
    async unavailable() {
      const url = new URL(testConfig().MYSQL_URL);
      url.port = String(await freePort());
      const deadPool = createPool({ MYSQL_URL: url.toString(), MYSQL_POOL_SIZE: 1 });
      return { store: new MysqlUserStore(deadPool), close: () => deadPool.end() };
    },
  },
  {
    name: "sqlite",
    async open() {
      const sqlite = tempSqlite("sc-users-");
      return { store: new SqliteUserStore(sqlite.db), close: async () => sqlite.remove() };
    },
    async unavailable() {
      const sqlite = tempSqlite("sc-users-closed-");
      const store = new SqliteUserStore(sqlite.db);
      sqlite.db.close();
      return { store, close: async () => sqlite.remove() };
    },
  },
];

function user(uid: Uid, name: string, email: string): UserRecord {
  return { uid, name, email, passwordHash: `hash-of-${name}`, createdAt: 1_700_000_000_000 };
}

async function codeOfRejection(promise: Promise<unknown>): Promise<ErrorCode | "resolved" | "not AppError"> {
  try {
    await promise;
    return "resolved";
  } catch (err) {
    return err instanceof AppError ? err.code : "not AppError";
  }
}

describe.each(backends)("UserStore on $name", (backend) => {
  let opened: OpenedStore;
  let store: UserStore;

  beforeAll(async () => {
    opened = await backend.open();
    store = opened.store;
  });

  afterAll(async () => {
    await opened?.close();
  });

  it("stores a user with a lower-cased email and finds it by uid, name and email case-insensitively", async () => {
    await store.create(user("18446744073709551615", "Zoe_1", "  Zoe@Example.COM "));
    const expected = {
      uid: "18446744073709551615",
      name: "Zoe_1",
      email: "zoe@example.com",
      createdAt: 1_700_000_000_000,
    };
    expect(await store.byUid("18446744073709551615")).toMatchObject(expected);
    expect(await store.byName("zoe_1")).toMatchObject(expected);
    expect(await store.byEmail("ZOE@example.com")).toMatchObject(expected);
    expect(await store.byName("nobody")).toBeNull();
    expect(await store.byEmail("nobody@example.com")).toBeNull();
  });

  it("maps a taken name or email to USER_EXISTS / EMAIL_EXISTS", async () => {
    await store.create(user("100", "yann", "yann@example.com"));
    expect(await codeOfRejection(store.create(user("101", "YANN", "other@example.com")))).toBe(ErrorCode.USER_EXISTS);
    expect(await codeOfRejection(store.create(user("102", "yann2", "Yann@Example.com")))).toBe(ErrorCode.EMAIL_EXISTS);
  });

  it("sets a password and answers which uids exist", async () => {
    await store.create(user("200", "xena", "xena@example.com"));
    await store.setPassword("200", "new-hash");
    expect((await store.byUid("200"))?.passwordHash).toBe("new-hash");
    expect(await store.existing([])).toEqual(new Set());
    expect(await store.existing(["200", "100", "999"])).toEqual(new Set(["200", "100"]));
  });

  it("keeps 64-bit uids exact next to each other", async () => {
    await store.create(user("18446744073709551614", "wim", "wim@example.com"));
    expect((await store.byName("wim"))?.uid).toBe("18446744073709551614");
    expect(await store.existing(["18446744073709551614", "18446744073709551613"])).toEqual(
      new Set(["18446744073709551614"]),
    );
  });

  it("deletes a user, so its name and email register again (issue 17)", async () => {
    await store.create(user("400", "vera", "vera@example.com"));
    expect(await store.delete("400")).toBe(true);
    expect(await store.byUid("400")).toBeNull();
    expect(await store.byName("vera")).toBeNull();
    expect(await store.delete("400")).toBe(false);
    await store.create(user("401", "Vera", "VERA@example.com"));
    expect((await store.byEmail("vera@example.com"))?.uid).toBe("401");
  });

  it("answers UNAVAILABLE when the database does not answer", async () => {
    const dead = await backend.unavailable();
    try {
      expect(await codeOfRejection(dead.store.byName("anyone"))).toBe(ErrorCode.UNAVAILABLE);
      expect(await codeOfRejection(dead.store.create(user("300", "wendy", "w@example.com")))).toBe(
        ErrorCode.UNAVAILABLE,
      );
    } finally {
      await dead.close();
    }
  });
});
