import type { Uid, UserStore } from "../storage/ports.js";

/**
 * Which uids exist, remembered on the node: every 1:1 send checks its recipient, and accounts
 * are never deleted, so a uid once found needs no second read of the users shard. Only
 * positive answers are kept (a uid registered a moment later is read again); at `max` entries
 * the set starts over, which bounds memory without an LRU's bookkeeping on the hot path.
 */
export class KnownUsers {
  private readonly known = new Set<Uid>();

  constructor(
    private readonly users: Pick<UserStore, "existing">,
    private readonly max: number,
  ) {}

  async existing(uids: Uid[]): Promise<Set<Uid>> {
    const unknown = uids.filter((uid) => !this.known.has(uid));
    if (unknown.length === 0) return new Set(uids);
    const found = await this.users.existing(unknown);
    for (const uid of found) {
      if (this.known.size >= this.max) this.known.clear();
      this.known.add(uid);
    }
    return new Set(uids.filter((uid) => this.known.has(uid) || found.has(uid)));
  }
}
