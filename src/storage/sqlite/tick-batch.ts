import type { SqliteDatabase } from "./database.js";

interface Queued<T, R> {
  item: T;
  resolve: (r: R) => void;
  reject: (e: unknown) => void;
}

/**
 * Group commit for SQLite: the writes asked for in one turn of the event loop run together in
 * one IMMEDIATE transaction, in call order, so one WAL sync serves them all (a sync per write
 * was most of the embedded node's CPU). `run` must undo itself when it throws (a nested
 * db.transaction, which better-sqlite3 makes a savepoint): one refused write then fails alone.
 * A transaction that fails as a whole (disk full, database closed) fails every write in it.
 */
export class TickBatch<T, R> {
  readonly #commit: (items: T[]) => PromiseSettledResult<R>[];
  #queued: Queued<T, R>[] = [];
  #scheduled = false;

  constructor(
    db: SqliteDatabase,
    run: (item: T) => R,
    private readonly mapError: (err: unknown) => unknown,
  ) {
    const all = db.transaction((items: T[]) =>
      items.map((item): PromiseSettledResult<R> => {
        try {
          return { status: "fulfilled", value: run(item) };
        } catch (reason) {
          return { status: "rejected", reason };
        }
      }),
    );
    this.#commit = (items) => all.immediate(items);
  }

  submit(item: T): Promise<R> {
    return new Promise((resolve, reject) => {
      this.#queued.push({ item, resolve, reject });
      if (this.#scheduled) return;
      this.#scheduled = true;
      // After this turn's I/O: every write its frames asked for shares one commit.
      setImmediate(() => this.#flush());
    });
  }

  #flush(): void {
    this.#scheduled = false;
    const batch = this.#queued;
    this.#queued = [];
    let outcomes: PromiseSettledResult<R>[];
    try {
      outcomes = this.#commit(batch.map((b) => b.item));
    } catch (err) {
      const mapped = this.mapError(err);
      for (const b of batch) b.reject(mapped);
      return;
    }
    for (const [i, b] of batch.entries()) {
      const outcome = outcomes[i] as PromiseSettledResult<R>;
      if (outcome.status === "fulfilled") b.resolve(outcome.value);
      else b.reject(this.mapError(outcome.reason));
    }
  }
}
