import type { Uid, UserStore } from "../storage/ports.js";

/**
 * Which uids exist, remembered on the node: every 1:1 send, invitation, block and report checks
 * its target, and a uid once found needs no second read of the users shard for a while. Only
 * positive answers are kept (a uid registered a moment later is read again). At `max` entries,
 * and `maxAgeMs` after the set was started, it starts over: that bounds memory without an LRU's
 * bookkeeping on the hot path, and bounds how long a deleted account (issue 17) is still taken
 * for a user here. The deletion worker of this process forgets a uid it deletes at once
 * (`forget`); a node of another process keeps it until its set starts over (README, "Deleting
 * an account").
 */
export class KnownUsers {
  private readonly known = new Set<Uid>();
  private startedAt: number;

  constructor(
    private readonly users: Pick<UserStore, "existing">,
    private readonly max: number,
    private readonly maxAgeMs = Number.POSITIVE_INFINITY,
    private readonly now: () => number = Date.now,
  ) {
    this.startedAt = now();
  }

  async existing(uids: Uid[]): Promise<Set<Uid>> {
    if (this.now() - this.startedAt >= this.maxAgeMs) this.startOver();
    const unknown = uids.filter((uid) => !this.known.has(uid));
    if (unknown.length === 0) return new Set(uids);
    const found = await this.users.existing(unknown);
    for (const uid of found) {
      if (this.known.size >= this.max) this.startOver();
      this.known.add(uid);
    }
    return new Set(uids.filter((uid) => this.known.has(uid) || found.has(uid)));
  }

  /** Reads uid again next time (its account was deleted). */
  forget(uid: Uid): void {
    this.known.delete(uid);
  }

  private startOver(): void {
    this.known.clear();
    this.startedAt = this.now();
  }
}
