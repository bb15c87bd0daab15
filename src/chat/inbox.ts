/**
 * Where a request waits before it runs:
 * - "barrier": after everything admitted before it, and everything after it waits for it
 *   (a login: no frame may run before the session is bound);
 * - a lane name (one per conversation, "control" for the rest): after the previous request of
 *   the same lane has released it, so a sender's messages to one conversation reach storage in
 *   the order they were sent, while other conversations go on beside them;
 * - "free": at once (acks, heartbeats, sync, history never queue behind sends).
 */
export type Lane = { kind: "barrier" } | { kind: "free" } | { kind: "lane"; name: string };

/** Handed to the request: release() lets the next request of its lane start. */
export interface LaneTurn {
  release(): void;
}

/**
 * One session's requests in flight. Admission never waits for I/O: a request starts as soon as
 * its lane allows, and the number admitted but unfinished is bounded by the caller.
 */
export class SessionInbox {
  private barrier: Promise<void> = Promise.resolve();
  private readonly lanes = new Map<string, Promise<void>>();
  private readonly running = new Set<Promise<void>>();

  get inFlight(): number {
    return this.running.size;
  }

  /** Runs `work` when `lane` allows; answers when it has finished (never rejects). */
  admit(lane: Lane, work: (turn: LaneTurn) => Promise<void>): Promise<void> {
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let start: Promise<unknown>;
    if (lane.kind === "barrier") start = Promise.allSettled([this.barrier, ...this.running]);
    else if (lane.kind === "lane") {
      const previous = this.lanes.get(lane.name);
      start = previous ? Promise.all([this.barrier, previous]) : this.barrier;
    } else start = this.barrier;

    const task = start
      .then(() => work({ release }))
      .then(
        () => release(),
        () => release(),
      );
    this.running.add(task);
    void task.then(() => this.running.delete(task));
    if (lane.kind === "barrier") this.barrier = task;
    else if (lane.kind === "lane") {
      const name = lane.name;
      this.lanes.set(name, released);
      void released.then(() => {
        if (this.lanes.get(name) === released) this.lanes.delete(name);
      });
    }
    return task;
  }
}
