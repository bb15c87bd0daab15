import type mysql from "mysql2/promise";

export interface MysqlTimeouts {
  /** Longest wait for a free pooled connection. */
  acquireMs: number;
  /** Longest wait for a statement's answer; the connection is then dropped, not reused. */
  queryMs: number;
}

type Query = (sql: unknown, values?: unknown) => Promise<unknown>;

/** mysql2's code for a query past its `timeout` (errors.ts counts it as unavailable). */
const QUERY_TIMEOUT = "PROTOCOL_SEQUENCE_TIMEOUT";

/**
 * The pool with every wait bounded: mysql2 has a per-query `timeout` but no default for it and
 * no bound on waiting for a free connection, so a frozen MySQL holds every caller forever.
 * Here each query gets the timeout, each connection acquisition its own, and a connection whose
 * query timed out is destroyed: its answer may still come, and a query sent after it would wait
 * behind it. pool.query runs on a connection taken here, so it is bounded the same way.
 */
export function withTimeouts(pool: mysql.Pool, timeouts: MysqlTimeouts): mysql.Pool {
  const getConnection = async (): Promise<mysql.PoolConnection> => timed(await acquire(pool, timeouts.acquireMs));
  const timed = (conn: mysql.PoolConnection): mysql.PoolConnection => {
    let broken = false;
    const query: Query = async (sql, values) => {
      // Anything sent now would wait behind the statement that timed out.
      if (broken) throw Object.assign(new Error("MySQL connection dropped after a timeout"), { code: QUERY_TIMEOUT });
      try {
        return await (conn.query as Query).call(conn, withTimeout(sql, timeouts.queryMs), values);
      } catch (err) {
        if ((err as { code?: unknown }).code === QUERY_TIMEOUT) broken = true;
        throw err;
      }
    };
    // A view of conn with these as its own (what a caller assigns over them is kept too); the
    // transaction statements go through query, so they are bounded as well.
    const view = Object.create(conn) as mysql.PoolConnection;
    Object.assign(view, {
      query,
      beginTransaction: () => query("START TRANSACTION"),
      commit: () => query("COMMIT"),
      rollback: () => query("ROLLBACK"),
      release: () => (broken ? conn.destroy() : conn.release()),
    });
    return view;
  };
  const query: Query = async (sql, values) => {
    const conn = await getConnection();
    try {
      return await (conn.query as Query)(sql, values);
    } finally {
      conn.release();
    }
  };
  const view = Object.create(pool) as mysql.Pool;
  Object.assign(view, { query, getConnection });
  return view;
}

function withTimeout(sql: unknown, timeout: number): unknown {
  return typeof sql === "string" ? { sql, timeout } : { timeout, ...(sql as object) };
}

/** A connection, or POOL_ACQUIRE_TIMEOUT; one that comes after that goes back to the pool. */
async function acquire(pool: mysql.Pool, ms: number): Promise<mysql.PoolConnection> {
  let timer: NodeJS.Timeout | undefined;
  let late = false;
  const taking = pool.getConnection();
  try {
    return await Promise.race([
      taking,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          late = true;
          reject(
            Object.assign(new Error(`no MySQL connection free within ${ms} ms`), { code: "POOL_ACQUIRE_TIMEOUT" }),
          );
        }, ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    if (late)
      taking.then(
        (conn) => conn.release(),
        () => undefined,
      );
  }
}
