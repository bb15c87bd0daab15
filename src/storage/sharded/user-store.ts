import { AppError, ErrorCode } from "../../errors.js";
import { isDecimalId } from "../../ids/identifiers.js";
import type { Logger } from "../../log/logger.js";
import { isDuplicateKey, mysqlCall } from "../mysql/errors.js";
import { deleteIndexRow, type IndexTable, indexHolder, insertIndexRow, namesWithPrefix } from "../mysql/user-index.js";
import { MysqlUserStore } from "../mysql/user-store.js";
import type { Uid, UserRecord, UserStore } from "../ports.js";
import type { Shards } from "./shards.js";

/** An index table that makes one column unique across all shards. */
export interface UniqueIndex extends IndexTable {
  taken: ErrorCode;
  /** The key the row is placed by: equal for values the column's collation calls equal. */
  placement(value: string): string;
}

/**
 * Placement folds case and accents like utf8mb4_general_ci does for Latin text, so two names
 * the collation calls equal land on the same shard, where the primary key refuses the second.
 */
export const NAMES: UniqueIndex = {
  table: "user_names",
  column: "name",
  taken: ErrorCode.USER_EXISTS,
  placement: (name) => `name:${name.normalize("NFD").replace(/\p{M}/gu, "").toLowerCase()}`,
};
export const EMAILS: UniqueIndex = {
  table: "user_emails",
  column: "email",
  taken: ErrorCode.EMAIL_EXISTS,
  placement: (email) => `email:${email.normalize("NFD").replace(/\p{M}/gu, "").toLowerCase()}`,
};

export interface ShardedUserStoreOptions {
  /** config.USER_INDEX_ORPHAN_MS. */
  orphanMs?: number;
  log?: Logger;
}

/**
 * Accounts over MySQL shards. The user row lives on slotOf(uid); the name and the email are
 * made unique by index rows (name → uid, email → uid) on the shards their hashes pick, so a
 * lookup by name or email asks one index shard, then the uid's shard, never all shards.
 *
 * create claims the name, then the email, then writes the user row. A step that fails undoes
 * the steps before it (compensation, no cross-shard transaction); if the undo itself cannot
 * reach its shard, the index row stays behind pointing at a uid with no user: lookups ignore
 * it, and a create of the same name or email after USER_INDEX_ORPHAN_MS reclaims it.
 */
export class ShardedUserStore implements UserStore {
  readonly #stores = new Map<string, MysqlUserStore>();
  readonly #orphanMs: number;

  constructor(
    private readonly shards: Shards,
    private readonly options: ShardedUserStoreOptions = {},
  ) {
    this.#orphanMs = options.orphanMs ?? 60_000;
  }

  async create(user: UserRecord): Promise<void> {
    const record = { ...user, email: user.email.trim().toLowerCase() };
    // Every step follows a slot a rebalance is moving (see Shards.retryingFences).
    const fenced = <T>(work: () => Promise<T>) => this.shards.retryingFences(work);
    await fenced(() => this.claim(NAMES, record.name, record.uid));
    try {
      await fenced(() => this.claim(EMAILS, record.email, record.uid));
    } catch (err) {
      await this.release(NAMES, record.name, record.uid);
      throw err;
    }
    try {
      await fenced(() => this.storeOf(record.uid).create(record));
    } catch (err) {
      await Promise.all([this.release(EMAILS, record.email, record.uid), this.release(NAMES, record.name, record.uid)]);
      throw err;
    }
  }

  byUid(uid: Uid): Promise<UserRecord | null> {
    if (!isDecimalId(uid)) return Promise.resolve(null);
    return this.storeOf(uid).byUid(uid);
  }

  async byName(name: string): Promise<UserRecord | null> {
    const uid = await this.lookup(NAMES, name);
    return uid ? this.byUid(uid) : null;
  }

  async byEmail(email: string): Promise<UserRecord | null> {
    const uid = await this.lookup(EMAILS, email.trim().toLowerCase());
    return uid ? this.byUid(uid) : null;
  }

  /** Claims the new name's index row, renames the user on its shard, then frees the old name's row. */
  async rename(uid: Uid, name: string): Promise<boolean> {
    const user = await this.byUid(uid);
    if (!user) return false;
    if (user.name === name) return true;
    const fenced = <T>(work: () => Promise<T>) => this.shards.retryingFences(work);
    await fenced(() => this.claim(NAMES, name, uid));
    try {
      await fenced(() => this.storeOf(uid).rename(uid, name));
    } catch (err) {
      await this.release(NAMES, name, uid);
      throw err;
    }
    await this.release(NAMES, user.name, uid);
    return true;
  }

  setPassword(uid: Uid, passwordHash: string): Promise<void> {
    return this.shards.retryingFences(() => this.storeOf(uid).setPassword(uid, passwordHash));
  }

  /**
   * Names are placed by their hash, so a prefix can be on any shard: this asks every instance
   * of the map (each a range scan of user_names' primary key, at most `limit` rows), merges by
   * name, then reads the users on their uid shards. The one query here that spans all shards.
   */
  async searchByNamePrefix(prefix: string, limit: number): Promise<UserRecord[]> {
    const max = Math.max(0, Math.floor(limit));
    if (typeof prefix !== "string" || prefix === "" || max === 0) return [];
    const pages = await Promise.all(
      this.shards.map.instances.map((instance) =>
        mysqlCall(ErrorCode.UNAVAILABLE, `user_names on ${instance.id}`, () =>
          namesWithPrefix(this.shards.pool(instance.id), prefix, max),
        ),
      ),
    );
    const hits = pages
      .flat()
      .sort((a, b) => a.name.toLowerCase().localeCompare(b.name.toLowerCase()) || (a.uid < b.uid ? -1 : 1))
      .slice(0, max);
    // An orphaned index row (its user was never written) has no user: it is left out.
    const users = await Promise.all(hits.map((h) => this.byUid(h.uid)));
    return users.filter((u): u is UserRecord => u !== null);
  }

  async existing(uids: Uid[]): Promise<Set<Uid>> {
    const byShard = new Map<string, Uid[]>();
    for (const uid of new Set(uids)) {
      if (!isDecimalId(uid)) continue;
      const id = this.shards.instanceFor(uid).id;
      byShard.set(id, [...(byShard.get(id) ?? []), uid]);
    }
    const found = await Promise.all([...byShard].map(([id, own]) => this.storeOn(id).existing(own)));
    return new Set(found.flatMap((s) => [...s]));
  }

  /**
   * The name and email index rows first (each only while it still names uid), then the user row:
   * a retry after a failure half-way still finds the user and so its name and email, and a
   * deletion that never finishes leaves at worst index rows naming a uid without a user, which
   * lookups ignore and a later create reclaims (see the class doc).
   */
  async delete(uid: Uid): Promise<boolean> {
    const user = await this.byUid(uid);
    if (!user) return false;
    for (const [index, value] of [
      [NAMES, user.name],
      [EMAILS, user.email],
    ] as const) {
      const key = index.placement(value);
      await mysqlCall(ErrorCode.UNAVAILABLE, `${index.table} of ${uid}`, () =>
        this.shards.retryingFences(() =>
          this.shards.write(this.shards.instanceFor(key).id, [key], (conn) =>
            deleteIndexRow(conn, index, value, user.uid),
          ),
        ),
      );
    }
    return this.shards.retryingFences(() => this.storeOf(user.uid).delete(user.uid));
  }

  /** Writes value → uid; a taken value throws index.taken unless its row is a reclaimable orphan. */
  private async claim(index: UniqueIndex, value: string, uid: Uid): Promise<void> {
    const key = index.placement(value);
    const id = this.shards.instanceFor(key).id;
    const pool = this.shards.pool(id);
    const insert = () => this.shards.write(id, [key], (conn) => insertIndexRow(conn, index, value, uid));
    await mysqlCall(ErrorCode.UNAVAILABLE, `${index.table} on ${id}`, async () => {
      try {
        await insert();
        return;
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
      }
      const holder = await indexHolder(pool, index, value);
      const stale = holder && Date.now() - holder.createdAt > this.#orphanMs;
      if (!holder || !stale || (await this.byUid(holder.uid))) throw new AppError(index.taken);
      // Left by a create that died half-way: take it over (only if it is still that row).
      await this.shards.write(id, [key], (conn) => deleteIndexRow(conn, index, value, holder.uid));
      this.options.log?.warn({ table: index.table, uid: holder.uid }, "reclaimed an orphaned index row");
      try {
        await insert();
      } catch (err) {
        if (isDuplicateKey(err)) throw new AppError(index.taken);
        throw err;
      }
    });
  }

  /** Best effort undo of claim; what it cannot reach is reclaimed later (see the class doc). */
  private async release(index: UniqueIndex, value: string, uid: Uid): Promise<void> {
    const key = index.placement(value);
    try {
      await this.shards.retryingFences(() =>
        this.shards.write(this.shards.instanceFor(key).id, [key], (conn) => deleteIndexRow(conn, index, value, uid)),
      );
    } catch (err) {
      this.options.log?.warn({ err, table: index.table, key }, "cannot undo an index row; left for reclaim");
    }
  }

  private async lookup(index: UniqueIndex, value: string): Promise<Uid | null> {
    const id = this.shards.instanceFor(index.placement(value)).id;
    return mysqlCall(
      ErrorCode.UNAVAILABLE,
      `${index.table} on ${id}`,
      async () => (await indexHolder(this.shards.pool(id), index, value))?.uid ?? null,
    );
  }

  private storeOf(uid: Uid): MysqlUserStore {
    return this.storeOn(this.shards.instanceFor(uid).id);
  }

  private storeOn(instanceId: string): MysqlUserStore {
    let store = this.#stores.get(instanceId);
    if (!store) {
      store = new MysqlUserStore(this.shards.pool(instanceId), this.shards.guard);
      this.#stores.set(instanceId, store);
    }
    return store;
  }
}
