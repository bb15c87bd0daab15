import type Database from "better-sqlite3";
import { ErrorCode } from "../../errors.js";
import type { NewOutboxEvent, OutboxEvent, OutboxKey, WebhookOutboxStore } from "../ports.js";
import {
  lastErrorColumn,
  OUTBOX_COLUMNS,
  OUTBOX_LANE,
  OUTBOX_READ_COLUMNS,
  type OutboxInsert,
  outboxEventOf,
  outboxKeyValues,
  outboxValues,
} from "../webhook-outbox.js";
import type { SqliteDatabase } from "./database.js";
import { sqliteCall } from "./errors.js";

/** The one instance of the SQLite file. */
const INSTANCE = "sqlite";

/** The insert the message stores run inside their own transactions (after-send rows). */
export function outboxInserter(db: SqliteDatabase): (row: OutboxInsert) => void {
  const insert = db.prepare(`INSERT OR IGNORE INTO webhook_outbox (${OUTBOX_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)`);
  return (row) => {
    insert.run(...outboxValues(row));
  };
}

/** The webhook outbox in the SQLite file (see WebhookOutboxStore): one instance. */
export class SqliteWebhookOutboxStore implements WebhookOutboxStore {
  readonly #insert: (row: OutboxInsert) => void;
  readonly #scan: Database.Statement<[string, number], Record<string, unknown>>;
  readonly #remove: Database.Statement<unknown[]>;
  readonly #retry: Database.Statement<unknown[]>;
  readonly #db: SqliteDatabase;

  constructor(db: SqliteDatabase) {
    this.#db = db;
    this.#insert = outboxInserter(db);
    this.#scan = db.prepare<[string, number], Record<string, unknown>>(
      `SELECT ${OUTBOX_READ_COLUMNS} FROM webhook_outbox
        WHERE place_key > ? AND dead = 0 ORDER BY place_key, lane, pos LIMIT ?`,
    );
    this.#remove = db.prepare<unknown[]>("DELETE FROM webhook_outbox WHERE place_key = ? AND lane = ? AND pos = ?");
    this.#retry = db.prepare<unknown[]>(
      `UPDATE webhook_outbox SET attempts = ?, next_at = ?, delivered_json = ?, dead = ?, last_error = ?
        WHERE place_key = ? AND lane = ? AND pos = ?`,
    );
  }

  instances(): string[] {
    return [INSTANCE];
  }

  async add(events: NewOutboxEvent[]): Promise<void> {
    const all = this.#db.transaction((rows: NewOutboxEvent[]) => {
      for (const e of rows) this.#insert({ ...e, lane: OUTBOX_LANE.events });
    });
    sqliteCall(ErrorCode.STORAGE_UNAVAILABLE, "webhook event", () => all.immediate(events));
  }

  async scan(_instance: string, after: string, limit: number): Promise<OutboxEvent[]> {
    return sqliteCall(ErrorCode.STORAGE_UNAVAILABLE, "webhook outbox", () =>
      this.#scan.all(after, Math.max(1, Math.floor(limit))).map(outboxEventOf),
    );
  }

  async remove(_instance: string, keys: OutboxKey[]): Promise<void> {
    if (keys.length === 0) return;
    sqliteCall(ErrorCode.STORAGE_UNAVAILABLE, "webhook delivered", () =>
      this.#db.transaction(() => {
        for (const key of keys) this.#remove.run(...outboxKeyValues(key));
      })(),
    );
  }

  async retry(
    _instance: string,
    key: OutboxKey,
    o: { attempts: number; nextAt: number; deliveredTo: string[]; dead: boolean; error: string },
  ): Promise<void> {
    sqliteCall(ErrorCode.STORAGE_UNAVAILABLE, "webhook retry", () =>
      this.#retry.run(
        o.attempts,
        o.nextAt,
        JSON.stringify(o.deliveredTo),
        o.dead ? 1 : 0,
        lastErrorColumn(o.error),
        ...outboxKeyValues(key),
      ),
    );
  }
}
