import type { OfflineRecipients } from "../chat/offline-recipients.js";
import type { Logger } from "../log/logger.js";
import type { BotStore, Uid } from "../storage/ports.js";

/**
 * The bots' uids as a chat node last read them: read at start and then every BOTS_CACHE_MS in
 * the background (one small read per interval, whatever the traffic), so `has` never waits.
 */
export class KnownBots {
  readonly #bots: Pick<BotStore, "list">;
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #log: Logger | undefined;
  #uids: ReadonlySet<string> = new Set();
  #readAt = Number.NEGATIVE_INFINITY;
  #reading = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(bots: Pick<BotStore, "list">, ttlMs: number, log?: Logger, now: () => number = Date.now) {
    this.#bots = bots;
    this.#ttlMs = ttlMs;
    this.#log = log;
    this.#now = now;
  }

  /** Reads the list now and every ttlMs until stop(). */
  start(): void {
    void this.refresh();
    this.#timer = setInterval(() => void this.refresh(), this.#ttlMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Reads the list now, and answers once it is read (or the read failed). */
  async refresh(): Promise<void> {
    if (this.#reading) return;
    this.#reading = true;
    this.#readAt = this.#now();
    try {
      this.#uids = new Set((await this.#bots.list()).map((b) => b.uid));
    } catch (err) {
      this.#log?.warn({ err }, "reading the bots failed; the last list is kept");
    } finally {
      this.#reading = false;
    }
  }

  has(uid: Uid): boolean {
    // Not started (a caller that refreshes itself): read again once the list is older than ttlMs.
    if (this.#timer === undefined && this.#now() - this.#readAt >= this.#ttlMs) void this.refresh();
    return this.#uids.has(uid);
  }
}

/**
 * An offline-recipients listener that never hears of bots (BOTS_ENABLED, issue 18): a bot has no
 * session, ever, so every message to it would otherwise cost a push-device read and a line of
 * the message.offline event. Bots are dropped from the list before the listener sees it.
 */
export function withoutBots(listener: OfflineRecipients, bots: Pick<KnownBots, "has">): OfflineRecipients {
  return {
    offline(message, uids) {
      const people = uids.filter((uid) => !bots.has(uid));
      if (people.length > 0) listener.offline(message, people);
    },
  };
}
