import type { RowDataPacket } from "mysql2/promise";
import { ErrorCode } from "../../errors.js";
import type { NewOutboxEvent, OutboxEvent, OutboxKey, WebhookOutboxStore } from "../ports.js";
import {
  lastErrorColumn,
  OUTBOX_COLUMNS,
  OUTBOX_LANE,
  OUTBOX_READ_COLUMNS,
  outboxEventOf,
  outboxKeyValues,
  outboxValues,
} from "../webhook-outbox.js";
import type { KeyPlacement } from "./block-store.js";
import { mysqlCall } from "./errors.js";

/**
 * The webhook outbox in MySQL (see WebhookOutboxStore): an event on its place key's instance,
 * written there as one statement (sharded: behind the key's slot fence); the dispatcher reads
 * and settles each instance's rows on that instance. The message stores write their own
 * after-send rows in the message's transaction (mysql/message-store.ts, group-store.ts).
 */
export class MysqlWebhookOutboxStore implements WebhookOutboxStore {
  constructor(private readonly placement: KeyPlacement) {}

  instances(): string[] {
    return this.placement.instances();
  }

  async add(events: NewOutboxEvent[]): Promise<void> {
    for (const e of events) {
      const values = outboxValues({ ...e, lane: OUTBOX_LANE.events });
      await this.call("webhook event", () =>
        this.placement.write(e.placeKey, (db) =>
          db.query(`INSERT IGNORE INTO webhook_outbox (${OUTBOX_COLUMNS}) VALUES (?)`, [values]),
        ),
      );
    }
  }

  /** One primary-key range from `after`, on the instance. */
  async scan(instance: string, after: string, limit: number): Promise<OutboxEvent[]> {
    const [rows] = await this.call(`webhook outbox on ${instance}`, () =>
      this.placement.pool(instance).query<RowDataPacket[]>(
        `SELECT ${OUTBOX_READ_COLUMNS} FROM webhook_outbox
            WHERE place_key > ? AND dead = 0 ORDER BY place_key, lane, pos LIMIT ?`,
        [after, Math.max(1, Math.floor(limit))],
      ),
    );
    return rows.map(outboxEventOf).filter((e) => this.placement.instanceOf(e.placeKey) === instance);
  }

  async remove(instance: string, keys: OutboxKey[]): Promise<void> {
    if (keys.length === 0) return;
    // One primary-key lookup per row, OR-ed: a range scan over just those rows.
    const where = keys.map(() => "(place_key = ? AND lane = ? AND pos = ?)").join(" OR ");
    await this.call("webhook delivered", () =>
      this.placement.pool(instance).query(`DELETE FROM webhook_outbox WHERE ${where}`, keys.flatMap(outboxKeyValues)),
    );
  }

  async retry(
    instance: string,
    key: OutboxKey,
    o: { attempts: number; nextAt: number; deliveredTo: string[]; dead: boolean; error: string },
  ): Promise<void> {
    await this.call("webhook retry", () =>
      this.placement.pool(instance).query(
        `UPDATE webhook_outbox SET attempts = ?, next_at = ?, delivered_json = ?, dead = ?, last_error = ?
            WHERE place_key = ? AND lane = ? AND pos = ?`,
        [
          o.attempts,
          o.nextAt,
          JSON.stringify(o.deliveredTo),
          o.dead ? 1 : 0,
          lastErrorColumn(o.error),
          ...outboxKeyValues(key),
        ],
      ),
    );
  }

  private call<T>(what: string, work: () => Promise<T>): Promise<T> {
    return mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, what, work);
  }
}
