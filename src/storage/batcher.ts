/**
 * Group commit: items submitted while `concurrency` flushes are in flight wait and go together
 * in the next flush, up to `max` per flush. An idle system flushes each item at once (a batch of
 * one), so batching adds no latency; a busy one pays one round trip per batch instead of per
 * item. `flush` answers one outcome per item, in order, so one refused item fails only itself.
 */
export class Batcher<T, R> {
  private readonly queue: { item: T; resolve: (r: R) => void; reject: (e: unknown) => void }[] = [];
  private running = 0;

  constructor(
    private readonly flush: (items: T[]) => Promise<PromiseSettledResult<R>[]>,
    private readonly max: number,
    private readonly concurrency: number,
  ) {}

  submit(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.running < this.concurrency && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.max);
      this.running++;
      void this.run(batch).finally(() => {
        this.running--;
        this.pump();
      });
    }
  }

  private async run(batch: { item: T; resolve: (r: R) => void; reject: (e: unknown) => void }[]): Promise<void> {
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
