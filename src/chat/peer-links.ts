import type { ClientDuplexStream } from "@grpc/grpc-js";
import {
  ChatNodeServiceService,
  type PushBatch,
  type PushBatchReply,
  type PushItem,
} from "../gen/shardchat/v1/chatnode.js";
import { checkedUids } from "../ids/identifiers.js";
import type { Logger } from "../log/logger.js";
import { sampled } from "../log/logger.js";
import type { Uid } from "../storage/ports.js";
import type { PeerDirectory } from "./peers.js";

export interface PeerLinkOptions {
  /** Items one link holds unanswered (queued or sent); more are refused at once (their recipients sync). */
  maxPending: number;
  /** A batch unanswered this long means the peer is stuck: its stream is reset. */
  replyTimeoutMs: number;
  log: Logger;
  /** Told the size of each batch written (a metric). */
  onBatch?: (items: number) => void;
}

/** Who of an item's recipients the peer had no session for (see PushOutcome). */
export interface Missed {
  offline: Uid[];
  moved: Uid[];
}

/**
 * What this node pushes to the other chat nodes: one long-lived ChatNodeService.Push stream per
 * peer, every item queued in one tick written as one batch. Each item answers the recipients
 * the peer had no session for, or undefined when the peer could not be reached (its stream
 * broke, it is unknown, or too much is waiting for it): the message is stored either way, and
 * the caller looks those recipients up or leaves them to sync.
 */
export class PeerLinks {
  readonly #links = new Map<string, PeerLink>();

  constructor(
    private readonly peers: Pick<PeerDirectory, "client" | "forget">,
    private readonly options: PeerLinkOptions,
  ) {}

  push(nodeId: string, item: PushItem): Promise<Missed | undefined> {
    let link = this.#links.get(nodeId);
    if (!link) {
      link = new PeerLink(nodeId, this.peers, this.options);
      this.#links.set(nodeId, link);
    }
    return link.push(item);
  }

  close(): void {
    for (const link of this.#links.values()) link.close();
    this.#links.clear();
  }
}

interface Waiter {
  item: PushItem;
  resolve: (missed: Missed | undefined) => void;
}

type PushStream = ClientDuplexStream<PushBatch, PushBatchReply>;

class PeerLink {
  #queue: Waiter[] = [];
  #scheduled = false;
  #pending = 0;
  #stream: PushStream | undefined;
  #opening: Promise<PushStream | undefined> | undefined;
  /** Batches written and not answered yet, oldest first (replies come in order). */
  readonly #sent = new Map<string, { waiters: Waiter[]; sentAtMs: number }>();
  #nextBatchId = 1;
  #watchdog: NodeJS.Timeout | undefined;

  constructor(
    private readonly nodeId: string,
    private readonly peers: Pick<PeerDirectory, "client" | "forget">,
    private readonly options: PeerLinkOptions,
  ) {}

  push(item: PushItem): Promise<Missed | undefined> {
    if (this.#pending >= this.options.maxPending) return Promise.resolve(undefined);
    this.#pending += 1;
    return new Promise((resolve) => {
      this.#queue.push({ item, resolve });
      if (!this.#scheduled) {
        this.#scheduled = true;
        // After this tick's I/O: everything the tick produced for this peer goes in one batch.
        setImmediate(() => void this.flush());
      }
    });
  }

  close(): void {
    clearInterval(this.#watchdog);
    const stream = this.#stream;
    this.#stream = undefined;
    stream?.end();
    this.failSent();
    this.settle(this.#queue.splice(0), () => undefined);
  }

  private async flush(): Promise<void> {
    this.#scheduled = false;
    const waiters = this.#queue.splice(0);
    if (waiters.length === 0) return;
    // Every flush waits on the same opening, so batches still leave in the order they formed.
    const stream = this.#stream ?? (await this.open());
    if (!stream) {
      this.settle(waiters, () => undefined);
      return;
    }
    const batchId = String(this.#nextBatchId++);
    this.#sent.set(batchId, { waiters, sentAtMs: Date.now() });
    this.options.onBatch?.(waiters.length);
    stream.write({ batchId, items: waiters.map((w) => w.item) });
  }

  private open(): Promise<PushStream | undefined> {
    this.#opening ??= (async () => {
      try {
        const client = await this.peers.client(this.nodeId);
        if (!client) return undefined;
        const stream = client.openBidiStream(ChatNodeServiceService.push);
        stream.on("data", (reply: PushBatchReply) => this.answered(reply));
        stream.on("error", (err: Error) => this.broken(stream, err));
        stream.on("end", () => this.broken(stream));
        this.#stream = stream;
        this.#watchdog ??= setInterval(() => this.checkStuck(), Math.max(50, this.options.replyTimeoutMs / 4));
        this.#watchdog.unref();
        return stream;
      } catch (err) {
        this.options.log.warn(sampled({ err, nodeId: this.nodeId }), "cannot open the push stream");
        return undefined;
      } finally {
        this.#opening = undefined;
      }
    })();
    return this.#opening;
  }

  private answered(reply: PushBatchReply): void {
    const sent = this.#sent.get(reply.batchId);
    if (!sent) return;
    this.#sent.delete(reply.batchId);
    this.settle(sent.waiters, (_, i) => {
      const outcome = reply.outcomes[i];
      return outcome ? { offline: checkedUids(outcome.offlineUids), moved: checkedUids(outcome.movedUids) } : undefined;
    });
  }

  private broken(stream: PushStream, err?: Error): void {
    if (this.#stream !== stream) return;
    this.#stream = undefined;
    // A peer shutting down cancels its streams: worth a warning only when pushes were waiting.
    const level = this.#sent.size > 0 ? "warn" : "debug";
    this.options.log[level]({ err, nodeId: this.nodeId, unanswered: this.#sent.size }, "push stream to peer ended");
    // The peer may have moved or gone: its address is looked up again before the next stream.
    if (err) this.peers.forget(this.nodeId);
    this.failSent();
  }

  /** A peer that stops answering (stalled process, lost packets) must not hold pushes forever. */
  private checkStuck(): void {
    const oldest = this.#sent.values().next().value;
    if (!oldest || Date.now() - oldest.sentAtMs < this.options.replyTimeoutMs) return;
    const stream = this.#stream;
    if (stream) {
      this.broken(stream, new Error(`no reply in ${this.options.replyTimeoutMs} ms`));
      stream.cancel();
    } else this.failSent();
  }

  private failSent(): void {
    for (const { waiters } of this.#sent.values()) this.settle(waiters, () => undefined);
    this.#sent.clear();
  }

  private settle(waiters: Waiter[], outcome: (w: Waiter, i: number) => Missed | undefined): void {
    for (const [i, w] of waiters.entries()) {
      this.#pending -= 1;
      w.resolve(outcome(w, i));
    }
  }
}
