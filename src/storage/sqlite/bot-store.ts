import { AppError, ErrorCode } from "../../errors.js";
import { checkBot, checkWebhookUrlColumn } from "../mysql/bot-store.js";
import type { BotRecord, BotStore, Uid } from "../ports.js";
import type { SqliteDatabase } from "./database.js";
import { sqliteCall } from "./errors.js";
import { canonicalId } from "./uids.js";

interface BotRow {
  uid: Uid;
  webhook_url: string;
  created_at: number;
  updated_at: number;
}

const COLUMNS = "uid, webhook_url, created_at, updated_at";

function botOf(r: BotRow): BotRecord {
  return { uid: r.uid, webhookUrl: r.webhook_url, createdAt: Number(r.created_at), updatedAt: Number(r.updated_at) };
}

/** Bots in the SQLite file: the same bots rows as MySQL. */
export class SqliteBotStore implements BotStore {
  readonly #insert;
  readonly #get;
  readonly #update;
  readonly #delete;
  readonly #all;

  constructor(db: SqliteDatabase) {
    this.#insert = db.prepare<[string, string, number, number]>(
      `INSERT OR IGNORE INTO bots (${COLUMNS}) VALUES (?, ?, ?, ?)`,
    );
    this.#get = db.prepare<[string], BotRow>(`SELECT ${COLUMNS} FROM bots WHERE uid = ?`);
    this.#update = db.prepare<[string, number, string]>(
      "UPDATE bots SET webhook_url = ?, updated_at = ? WHERE uid = ?",
    );
    this.#delete = db.prepare<[string]>("DELETE FROM bots WHERE uid = ?");
    // uid is TEXT: order by its number (length first, canonical decimals have no leading zero).
    this.#all = db.prepare<[], BotRow>(`SELECT ${COLUMNS} FROM bots ORDER BY length(uid), uid`);
  }

  async create(bot: BotRecord): Promise<void> {
    const uid = checkBot(bot);
    const { changes } = run(() => this.#insert.run(uid, bot.webhookUrl, bot.createdAt, bot.updatedAt));
    if (changes === 0) throw new AppError(ErrorCode.USER_EXISTS, `user ${uid} is a bot already`);
  }

  async byUid(uid: Uid): Promise<BotRecord | null> {
    const key = canonicalId(uid);
    if (key === null) return null;
    const row = run(() => this.#get.get(key));
    return row ? botOf(row) : null;
  }

  async setWebhook(uid: Uid, webhookUrl: string, atMs: number): Promise<boolean> {
    const key = canonicalId(uid);
    if (key === null) return false;
    checkWebhookUrlColumn(webhookUrl);
    return run(() => this.#update.run(webhookUrl, atMs, key)).changes > 0;
  }

  async remove(uid: Uid): Promise<boolean> {
    const key = canonicalId(uid);
    if (key === null) return false;
    return run(() => this.#delete.run(key)).changes > 0;
  }

  async list(): Promise<BotRecord[]> {
    return run(() => this.#all.all().map(botOf));
  }
}

function run<T>(work: () => T): T {
  return sqliteCall(ErrorCode.STORAGE_UNAVAILABLE, "sqlite bots", work);
}
