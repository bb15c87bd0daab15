import type { ResultSetHeader, RowDataPacket } from "mysql2/promise";
import { AppError, ErrorCode } from "../../errors.js";
import { isDecimalId, storedId } from "../../ids/identifiers.js";
import { fitsChars } from "../../text/chars.js";
import { BOT_COLUMN_CHARS, type BotRecord, type BotStore, type Uid } from "../ports.js";
import type { KeyPlacement } from "./block-store.js";
import { mysqlCall } from "./errors.js";

/** What the columns would refuse or misread (INVALID_ARGUMENT); the uid's canonical text. */
export function checkBot(bot: BotRecord): Uid {
  const bad = (why: string) => new AppError(ErrorCode.INVALID_ARGUMENT, why);
  if (!isDecimalId(bot.uid)) throw bad(`"${bot.uid}" is not a decimal id`);
  checkWebhookUrlColumn(bot.webhookUrl);
  if (!Number.isSafeInteger(bot.createdAt) || !Number.isSafeInteger(bot.updatedAt)) {
    throw bad("createdAt and updatedAt must be integers");
  }
  return `${BigInt(bot.uid)}`;
}

export function checkWebhookUrlColumn(url: string): void {
  if (typeof url !== "string" || url === "" || !fitsChars(url, BOT_COLUMN_CHARS.webhookUrl)) {
    throw new AppError(
      ErrorCode.INVALID_ARGUMENT,
      `a bot's webhook URL is 1 to ${BOT_COLUMN_CHARS.webhookUrl} characters`,
    );
  }
}

const COLUMNS = "uid, webhook_url, created_at, updated_at";

function botOf(row: RowDataPacket): BotRecord {
  return {
    uid: storedId(row.uid),
    webhookUrl: String(row.webhook_url),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

/** Bots in MySQL (see BotStore): each row on its uid's instance (one pool, or the uid's shard). */
export class MysqlBotStore implements BotStore {
  constructor(private readonly placement: KeyPlacement) {}

  async create(bot: BotRecord): Promise<void> {
    const key = checkBot(bot);
    const [result] = await this.call("bot create", () =>
      this.placement.write(key, (db) =>
        db.query<ResultSetHeader>(`INSERT IGNORE INTO bots (${COLUMNS}) VALUES (?, ?, ?, ?)`, [
          key,
          bot.webhookUrl,
          bot.createdAt,
          bot.updatedAt,
        ]),
      ),
    );
    if (result.affectedRows === 0) throw new AppError(ErrorCode.USER_EXISTS, `user ${key} is a bot already`);
  }

  async byUid(uid: Uid): Promise<BotRecord | null> {
    if (!isDecimalId(uid)) return null;
    const key = `${BigInt(uid)}`;
    const [rows] = await this.call("bot", () =>
      this.placement
        .pool(this.placement.instanceOf(key))
        .query<RowDataPacket[]>(`SELECT ${COLUMNS} FROM bots WHERE uid = ?`, [key]),
    );
    return rows[0] ? botOf(rows[0]) : null;
  }

  async setWebhook(uid: Uid, webhookUrl: string, atMs: number): Promise<boolean> {
    if (!isDecimalId(uid)) return false;
    checkWebhookUrlColumn(webhookUrl);
    const key = `${BigInt(uid)}`;
    // CLIENT_FOUND_ROWS is off: the same URL again counts 0 changed rows, so match on existence.
    const rows = await this.call("bot webhook", () =>
      this.placement.write(key, async (db) => {
        await db.query("UPDATE bots SET webhook_url = ?, updated_at = ? WHERE uid = ?", [webhookUrl, atMs, key]);
        return (await db.query<RowDataPacket[]>("SELECT uid FROM bots WHERE uid = ?", [key]))[0];
      }),
    );
    return rows.length > 0;
  }

  async remove(uid: Uid): Promise<boolean> {
    if (!isDecimalId(uid)) return false;
    const key = `${BigInt(uid)}`;
    const [result] = await this.call("bot remove", () =>
      this.placement.write(key, (db) => db.query<ResultSetHeader>("DELETE FROM bots WHERE uid = ?", [key])),
    );
    return result.affectedRows > 0;
  }

  async list(): Promise<BotRecord[]> {
    const { placement } = this;
    const all = await Promise.all(
      placement.instances().map(async (instance) => {
        const [rows] = await this.call("bots", () =>
          placement.pool(instance).query<RowDataPacket[]>(`SELECT ${COLUMNS} FROM bots ORDER BY uid`),
        );
        // Sharded: a row copied away by a rebalance (not yet cleaned up) is its new owner's.
        return rows.map(botOf).filter((b) => placement.instanceOf(b.uid) === instance);
      }),
    );
    return all.flat().sort((a, b) => (BigInt(a.uid) < BigInt(b.uid) ? -1 : BigInt(a.uid) > BigInt(b.uid) ? 1 : 0));
  }

  private call<T>(what: string, work: () => Promise<T>): Promise<T> {
    return mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, what, work);
  }
}
