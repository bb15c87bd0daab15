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

/** A barrier no request waits behind: shared, so an idle inbox allocates nothing. */
const OPEN: Promise<void> = Promise.resolve();

/**
 * One session's requests in flight. Admission never waits for I/O: a request starts as soon as
 * its lane allows, and the number admitted but unfinished is bounded by the caller.
 *
 * Most sessions sit idle between frames (an idle node holds tens of thousands of them), so an
 * inbox holds its lane map and running set only while a request is in flight, and its barrier
 * only until that request has finished: an idle inbox is three empty fields.
 */
export class SessionInbox {
  private barrier: Promise<void> = OPEN;
  private lanes: Map<string, Promise<void>> | undefined;
  private running: Set<Promise<void>> | undefined;

  get inFlight(): number {
    return this.running?.size ?? 0;
  }

  /** Runs `work` when `lane` allows; answers when it has finished (never rejects). */
  admit(lane: Lane, work: (turn: LaneTurn) => Promise<void>): Promise<void> {
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let start: Promise<unknown>;
    if (lane.kind === "barrier") start = Promise.allSettled([this.barrier, ...(this.running ?? [])]);
    else if (lane.kind === "lane") {
      const previous = this.lanes?.get(lane.name);
      start = previous ? Promise.all([this.barrier, previous]) : this.barrier;
    } else start = this.barrier;

    const task = start
      .then(() => work({ release }))
      .then(
        () => release(),
        () => release(),
      );
    this.running ??= new Set();
    const running = this.running;
    running.add(task);
    void task.then(() => {
      running.delete(task);
      if (running.size === 0 && this.running === running) this.running = undefined;
      if (this.barrier === task) this.barrier = OPEN;
    });
    if (lane.kind === "barrier") this.barrier = task;
    else if (lane.kind === "lane") {
      const name = lane.name;
      this.lanes ??= new Map();
      const lanes = this.lanes;
      lanes.set(name, released);
      void released.then(() => {
        if (lanes.get(name) !== released) return;
        lanes.delete(name);
        if (lanes.size === 0 && this.lanes === lanes) this.lanes = undefined;
      });
    }
    return task;
  }
}
