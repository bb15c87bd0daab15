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
 * What the stores do with a pooled connection. Narrower than mysql2's PoolConnection, so the
 * bounded connection below is all a store can reach.
 */
export type Connection = Pick<
  mysql.PoolConnection,
  "query" | "beginTransaction" | "commit" | "rollback" | "release" | "destroy"
>;

/** mysql2's pool, its connections bounded ones. */
export type BoundedPool = Omit<mysql.Pool, "getConnection"> & { getConnection(): Promise<Connection> };

/**
 * The pool with every wait bounded: mysql2 has a per-query `timeout` but no default for it and
 * no bound on waiting for a free connection, so a frozen MySQL holds every caller forever.
 * Here each query gets the timeout, each connection acquisition its own, and a connection whose
 * query timed out is destroyed: its answer may still come, and a query sent after it would wait
 * behind it. pool.query runs on a connection taken here, so it is bounded the same way.
 */
export function withTimeouts(pool: mysql.Pool, timeouts: MysqlTimeouts): BoundedPool {
  // The one cast: query here takes what mysql2's overloads take and hands it on unchanged.
  const getConnection = async (): Promise<Connection> =>
    new BoundedConnection(await acquire(pool, timeouts.acquireMs), timeouts.queryMs) as unknown as Connection;
  const query: Query = async (sql, values) => {
    const conn = await getConnection();
    try {
      return await (conn.query as Query)(sql, values);
    } finally {
      conn.release();
    }
  };
  const view = Object.create(pool) as BoundedPool;
  Object.assign(view, { query, getConnection });
  return view;
}

/**
 * One acquisition of a pooled connection. A class, not a view made with Object.create over
 * mysql2's connection: that turned each acquired connection into a prototype, and with the
 * closures it cost about 20 µs of CPU per acquisition (a third of a bare SELECT 1's).
 */
class BoundedConnection {
  #broken = false;

  constructor(
    private readonly conn: mysql.PoolConnection,
    private readonly queryMs: number,
  ) {}

  query(sql: unknown, values?: unknown): Promise<unknown> {
    // Anything sent now would wait behind the statement that timed out.
    if (this.#broken)
      return Promise.reject(
        Object.assign(new Error("MySQL connection dropped after a timeout"), { code: QUERY_TIMEOUT }),
      );
    return (this.conn.query as Query).call(this.conn, withTimeout(sql, this.queryMs), values).catch((err: unknown) => {
      if ((err as { code?: unknown }).code === QUERY_TIMEOUT) this.#broken = true;
      throw err;
    });
  }

  // The transaction statements go through query, so they are bounded as well.
  beginTransaction(): Promise<void> {
    return this.statement("START TRANSACTION");
  }

  commit(): Promise<void> {
    return this.statement("COMMIT");
  }

  rollback(): Promise<void> {
    return this.statement("ROLLBACK");
  }

  release(): void {
    if (this.#broken) this.conn.destroy();
    else this.conn.release();
  }

  destroy(): void {
    this.conn.destroy();
  }

  private async statement(sql: string): Promise<void> {
    await this.query(sql);
  }
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
