import { AppError, ErrorCode } from "@shardchat/protocol";
import type { ChatMessage, NodeAddress, SendMessageResponse } from "@shardchat/protocol/wire";
import { EventEmitter } from "events";
import { nanoid } from "nanoid";
import type { ChatClient, ChatClientOptions } from "./chat-client.js";
import type { LoginAnswer } from "./gate-client.js";
import { openChat, type Transport } from "./open-chat.js";

export interface ResilientChatOptions extends Omit<ChatClientOptions, "seen"> {
  transport?: Transport;
  /** A new login through gate: used when the node went away without saying where to go (it died). */
  relogin: () => Promise<LoginAnswer>;
  /**
   * Base of the pause before a reconnect and between attempts (default 200 ms): each pause is
   * random up to base × 2^(attempt − 1), at most maxRetryDelayMs, so the users of a node that
   * died or was added come back spread out rather than as one burst of logins.
   */
  retryDelayMs?: number;
  /** Longest pause between reconnect attempts (default 5,000 ms). */
  maxRetryDelayMs?: number;
  /** Reconnect attempts before giving up (default 100: with the default pause, longer than NODE_TTL_MS). */
  maxAttempts?: number;
}

export interface ResilientChatEvents {
  /** Every message for this user, once, in seq order per conversation, across reconnects. */
  message: [ChatMessage];
  /** Connected again: to the node a move push named, or through gate after the node was lost. */
  reconnected: [{ cause: "move" | "lost" }];
  /** Reconnecting failed maxAttempts times; the chat is closed. */
  gaveUp: [Error];
}

/** Codes after which the same request may simply be sent again (clientMsgId makes it idempotent). */
const RETRYABLE = new Set([
  ErrorCode.UNAVAILABLE,
  ErrorCode.STORAGE_UNAVAILABLE,
  ErrorCode.SLOT_MOVING,
  ErrorCode.NO_CHAT_NODE,
]);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Exponential backoff with full jitter: a random pause up to min(cap, base × 2^(attempt − 1)). */
export function backoffMs(attempt: number, baseMs: number, capMs: number): number {
  return Math.random() * Math.min(capMs, baseMs * 2 ** Math.min(Math.max(attempt - 1, 0), 20));
}

/**
 * A chat session that survives the node changing under it: on a move push (a node joined, or
 * this one is draining) it logs in at the named node with the same token; when the connection
 * is lost without one (the node died) it logs in through gate again, which asks status for the
 * user's node once the dead one has left the ring. After each reconnect it syncs, so messages
 * stored while it was away arrive; each message is emitted once. A send that failed with a
 * retryable code, or whose connection went away before the ack, is sent again with the same
 * clientMsgId once connected, so it is stored once.
 */
export class ResilientChat extends EventEmitter<ResilientChatEvents> {
  #client: ChatClient | undefined;
  #connecting: Promise<ChatClient> | undefined;
  #moveTo: NodeAddress | undefined;
  #closed = false;
  readonly #seen = new Map<string, number>();
  /** Pushes that arrived while a reconnect's sync was running. */
  #held: ChatMessage[] | undefined;
  #delivering: Promise<void> = Promise.resolve();
  /** Messages whose gap could not be filled (the connection went away meanwhile). */
  #retry: ChatMessage[] = [];

  private constructor(
    private login: LoginAnswer,
    private readonly options: ResilientChatOptions,
  ) {
    super();
  }

  static async open(login: LoginAnswer, options: ResilientChatOptions): Promise<ResilientChat> {
    const chat = new ResilientChat(login, options);
    await chat.connect("lost", false);
    return chat;
  }

  /** Connected right now (false while reconnecting). */
  get connected(): boolean {
    return this.#client !== undefined && !this.#client.closed;
  }

  get uid(): string {
    return this.login.uid;
  }

  /** Sends a text, resending (same clientMsgId) across reconnects until it is acked or fails for good. */
  async sendText(toUid: string, text: string, clientMsgId: string = nanoid()): Promise<SendMessageResponse> {
    const maxAttempts = this.options.maxAttempts ?? 100;
    for (let attempt = 1; ; attempt++) {
      const client = await this.current();
      try {
        return await client.sendText(toUid, text, clientMsgId);
      } catch (err) {
        if (this.#closed || !(err instanceof AppError) || !RETRYABLE.has(err.code) || attempt >= maxAttempts) throw err;
        await sleep(this.options.retryDelayMs ?? 200);
      }
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#client?.close();
  }

  /** The live client, waiting for a reconnect in progress. */
  private async current(): Promise<ChatClient> {
    if (this.#closed) throw new AppError(ErrorCode.UNAVAILABLE, "chat closed");
    if (this.#client && !this.#client.closed) return this.#client;
    return this.#connecting ?? this.connect("lost", true);
  }

  private connect(cause: "move" | "lost", announce: boolean): Promise<ChatClient> {
    this.#connecting ??= this.reconnectLoop(cause, announce).finally(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }

  private async reconnectLoop(cause: "move" | "lost", announce: boolean): Promise<ChatClient> {
    const maxAttempts = this.options.maxAttempts ?? 100;
    // Everyone on a lost or moving node hears of it at the same moment: start at a random point.
    if (announce) await sleep(this.pauseMs(1));
    // A node pacing its logins (RATE_LIMITED) is the right node: the next attempt goes back to it.
    let paced = false;
    for (let attempt = 1; ; attempt++) {
      const target = this.#moveTo;
      this.#moveTo = undefined;
      try {
        // A move names the node and keeps the token; otherwise gate picks the node afresh.
        if (target) this.login = { ...this.login, host: target.host, port: target.tcpPort, wsUrl: target.wsUrl };
        else if ((announce || attempt > 1) && !paced) this.login = await this.options.relogin();
        paced = false;
        const client = await openChat(this.login, this.options.transport ?? "tcp", {
          ...this.options,
          seen: this.#seen,
        });
        this.attach(client);
        await this.syncOn(client);
        if (announce) this.emit("reconnected", { cause: target ? "move" : cause });
        return client;
      } catch (err) {
        if (this.#closed) throw err;
        paced = err instanceof AppError && err.code === ErrorCode.RATE_LIMITED;
        if (attempt >= maxAttempts) {
          this.#closed = true;
          this.emit("gaveUp", err as Error);
          throw err;
        }
        await sleep(this.pauseMs(attempt + 1));
      }
    }
  }

  private pauseMs(attempt: number): number {
    return backoffMs(attempt, this.options.retryDelayMs ?? 200, this.options.maxRetryDelayMs ?? 5000);
  }

  /**
   * Everything stored while away, page by page, delivered before any push of this connection:
   * a push that overtook the sync would otherwise move a conversation's cursor past messages
   * the sync has not handed over yet.
   */
  private async syncOn(client: ChatClient): Promise<void> {
    this.#held = [];
    try {
      for (;;) {
        const page = await client.sync();
        for (const m of page.messages) this.deliver(m);
        if (page.messages.length > 0) await client.ack(page.messages);
        if (!page.more) break;
      }
    } finally {
      const held = [...this.#retry, ...this.#held];
      this.#held = undefined;
      this.#retry = [];
      for (const m of held) this.deliver(m);
    }
  }

  private attach(client: ChatClient): void {
    this.#client = client;
    client.on("message", (m) => {
      if (this.#held) this.#held.push(m);
      else this.deliver(m);
    });
    client.on("move", (push) => {
      this.#moveTo = push.node;
    });
    client.on("close", () => {
      if (this.#closed || this.#client !== client) return;
      void this.connect(this.#moveTo ? "move" : "lost", true).catch(() => undefined);
    });
  }

  /** In seq order per conversation, each once; a gap after a known seq is filled from history first. */
  private deliver(message: ChatMessage): void {
    this.#delivering = this.#delivering
      .then(async () => {
        const seen = this.#seen.get(message.convId);
        if (seen !== undefined && message.seq <= seen) return;
        if (seen !== undefined && message.seq > seen + 1 && this.#client) {
          const missing = await this.#client.history({
            convId: message.convId,
            afterSeq: seen,
            limit: message.seq - seen - 1,
          });
          for (const m of missing) this.emitOnce(m);
        }
        this.emitOnce(message);
      })
      .catch(() => {
        // The connection went away while filling the gap. The push was acked already, so no
        // later sync brings it again: keep it, and deliver it after the next connection's sync.
        this.#retry.push(message);
      });
  }

  private emitOnce(message: ChatMessage): void {
    if (message.seq <= (this.#seen.get(message.convId) ?? 0)) return;
    this.#seen.set(message.convId, message.seq);
    this.emit("message", message);
  }
}
