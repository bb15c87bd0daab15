/** Told the size of each flush (the batch-size histograms). */
export type BatchObserver = (size: number) => void;

interface Queued<T, R> {
  item: T;
  key: string | undefined;
  resolve: (r: R) => void;
  reject: (e: unknown) => void;
}

/**
 * Group commit: items submitted while `concurrency` flushes are in flight wait and go together
 * in the next flush, up to `max` per flush. An idle system flushes each item at once (a batch of
 * one), so batching adds no latency; a busy one pays one round trip per batch instead of per
 * item. `flush` answers one outcome per item, in order, so one refused item fails only itself.
 *
 * With `keyOf` (a conversation id), items of one key are flushed in submission order and never
 * in two flushes at once: an item whose key is in flight waits for that flush to end, and so
 * does every later item of its key. That is one ordered writer per key (what makes a sender's
 * seqs follow its send order) without holding up the other keys.
 */
export class Batcher<T, R> {
  private readonly queue: Queued<T, R>[] = [];
  private readonly busyKeys = new Set<string>();
  private running = 0;

  constructor(
    private readonly flush: (items: T[]) => Promise<PromiseSettledResult<R>[]>,
    private readonly max: number,
    private readonly concurrency: number,
    private readonly keyOf?: (item: T) => string,
    private readonly observe?: BatchObserver,
  ) {}

  submit(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, key: this.keyOf?.(item), resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.running < this.concurrency && this.queue.length > 0) {
      const batch = this.take();
      if (batch.length === 0) return;
      this.running++;
      void this.run(batch).finally(() => {
        this.running--;
        for (const b of batch) if (b.key !== undefined) this.busyKeys.delete(b.key);
        this.pump();
      });
    }
  }

  /** The next flush: queue order, skipping keys in flight (their items keep their place). */
  private take(): Queued<T, R>[] {
    if (!this.keyOf) return this.queue.splice(0, this.max);
    const batch: Queued<T, R>[] = [];
    const added = new Set<string>();
    let kept = 0;
    for (let i = 0; i < this.queue.length; i++) {
      const q = this.queue[i] as Queued<T, R>;
      const key = q.key as string;
      if (batch.length < this.max && (added.has(key) || !this.busyKeys.has(key))) {
        batch.push(q);
        added.add(key);
      } else {
        this.queue[kept++] = q;
      }
    }
    this.queue.length = kept;
    for (const key of added) this.busyKeys.add(key);
    return batch;
  }

  private async run(batch: Queued<T, R>[]): Promise<void> {
    this.observe?.(batch.length);
    let outcomes: PromiseSettledResult<R>[];
    try {
      outcomes = await this.flush(batch.map((b) => b.item));
    } catch (err) {
      for (const b of batch) b.reject(err);
      return;
    }
    for (const [i, b] of batch.entries()) {
      const outcome = outcomes[i];
      if (outcome?.status === "fulfilled") b.resolve(outcome.value);
      else b.reject(outcome ? outcome.reason : new Error("batch flush answered fewer outcomes than items"));
    }
  }
}
