import type { Logger } from "../log/logger.js";
import { sampled } from "../log/logger.js";
import type { MessageStore, Uid } from "../storage/ports.js";

interface Cursor {
  /** Highest seq the user's sessions acked. */
  acked: number;
  /** The user's own messages of the conversation stored since (seqs), which the cursor steps over. */
  own: number[];
}

/**
 * Delivery acks, held in memory and written in batches every `flushMs`: an ack costs no
 * transaction of its own, and one write carries every cursor acked meanwhile. What a crash
 * loses is only cursor movement: those messages are delivered again (the SDK drops them by
 * seq), never lost, because a cursor only moves after the client has the messages.
 *
 * A user's pending cursors are written before anything reads them back (sync asks
 * `flushUser` first), so a client never syncs what it acked on this node.
 */
export class DeliveredCursors {
  #pending = new Map<Uid, Map<string, Cursor>>();
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;

  constructor(
    private readonly store: Pick<MessageStore, "ack">,
    private readonly flushMs: number,
    private readonly log: Logger,
  ) {}

  /** The user has everything up to seq in each conversation. With flushMs 0, written at once. */
  async ack(uid: Uid, cursors: { convId: string; seq: number }[]): Promise<void> {
    if (this.flushMs === 0) return this.store.ack(uid, cursors);
    let mine = this.#pending.get(uid);
    if (!mine) {
      mine = new Map();
      this.#pending.set(uid, mine);
    }
    for (const { convId, seq } of cursors) {
      const cursor = mine.get(convId);
      if (cursor) cursor.acked = Math.max(cursor.acked, seq);
      else mine.set(convId, { acked: seq, own: [] });
    }
  }

  /**
   * The user stored a message of its own: storage steps its cursor over it only when the cursor
   * is right before it, which an ack still held here would hide, so the held cursor steps too.
   */
  sent(uid: Uid, convId: string, seq: number): void {
    this.#pending.get(uid)?.get(convId)?.own.push(seq);
  }

  /** Writes the user's held cursors now (before a sync reads them). */
  async flushUser(uid: Uid): Promise<void> {
    const mine = this.#pending.get(uid);
    if (mine) {
      this.#pending.delete(uid);
      await this.write(new Map([[uid, mine]]));
    }
    // A flush under way may hold this user's cursors too.
    await this.#flushing;
  }

  /** Writes every held cursor; concurrent calls share one write. */
  flush(): Promise<void> {
    if (this.#flushing) return this.#flushing;
    if (this.#pending.size === 0) return Promise.resolve();
    const all = this.#pending;
    this.#pending = new Map();
    const flushing = this.write(all).finally(() => {
      if (this.#flushing === flushing) this.#flushing = undefined;
    });
    this.#flushing = flushing;
    return flushing;
  }

  start(): void {
    if (this.flushMs === 0) return;
    this.#timer = setInterval(() => void this.flush(), this.flushMs);
    this.#timer.unref();
  }

  /** Stops the timer and writes what is held. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush();
  }

  private async write(batch: Map<Uid, Map<string, Cursor>>): Promise<void> {
    await Promise.all(
      [...batch].map(async ([uid, cursors]) => {
        const targets = [...cursors].map(([convId, c]) => ({ convId, seq: stepOverOwn(c) }));
        try {
          await this.store.ack(uid, targets);
        } catch (err) {
          // Kept for the next flush (cursors only move forward, so a late write is harmless).
          this.log.warn(sampled({ err, uid }), "cannot write delivery cursors; retrying on the next flush");
          for (const t of targets) void this.ack(uid, [t]);
        }
      }),
    );
  }
}

function stepOverOwn(cursor: Cursor): number {
  let seq = cursor.acked;
  const own = new Set(cursor.own);
  while (own.has(seq + 1)) seq += 1;
  return seq;
}
