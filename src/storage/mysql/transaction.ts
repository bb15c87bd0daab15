import type { RowDataPacket } from "mysql2/promise";
import { mysqlCode } from "./errors.js";
import type { Pool } from "./pool.js";
import type { Connection } from "./timeouts.js";

/** Runs work in one transaction on one connection; a connection that failed is not reused. */
export async function inTransaction<T>(pool: Pool, work: (conn: Connection) => Promise<T>): Promise<T> {
  const conn = await pool.getConnection();
  let reusable = true;
  try {
    await conn.beginTransaction();
    const result = await work(conn);
    await conn.commit();
    return result;
  } catch (err) {
    try {
      await conn.rollback();
    } catch {
      reusable = false;
    }
    throw err;
  } finally {
    if (reusable) conn.release();
    else conn.destroy();
  }
}

/**
 * Runs work on one pooled connection for a transaction whose statements work sends itself,
 * START TRANSACTION and COMMIT among them, several to a round trip (multipleStatements). On an
 * error it rolls back; a connection that cannot is dropped rather than returned to the pool.
 */
export async function inSentTransaction<T>(pool: Pool, work: (conn: Connection) => Promise<T>): Promise<T> {
  const conn = await pool.getConnection();
  let reusable = true;
  try {
    return await work(conn);
  } catch (err) {
    await conn.query("ROLLBACK").catch(() => {
      reusable = false;
    });
    throw err;
  } finally {
    if (reusable) conn.release();
    else conn.destroy();
  }
}

/** InnoDB rolls back a deadlock victim whole, so running it again is safe. */
export async function retryingDeadlocks<T>(retries: number, work: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await work();
    } catch (err) {
      if (mysqlCode(err) !== "ER_LOCK_DEADLOCK" || attempt >= retries) throw err;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * (attempt + 1)));
    }
  }
}

/**
 * A write guard as a statement (the sharded adapter's slot fence), for a caller that sends it
 * together with its own statements in one round trip: run `sql` with `params` inside the
 * transaction, then `check` its rows (it throws to refuse the write; the caller rolls back).
 */
export interface FenceCheck {
  sql: string;
  params: unknown[];
  check(rows: RowDataPacket[]): void;
}
