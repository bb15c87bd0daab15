import { EventEmitter } from "node:events";
import { nanoid } from "nanoid";
import { AppError, ErrorCode } from "../errors.js";
import {
  type ChatMessage,
  Envelope,
  type ErrorResponse,
  type HistoryRequest,
  type KickPush,
  type LoginResponse,
  MessageKind,
  type SendMessageResponse,
  type SyncResponse,
} from "../gen/shardchat/v1/client.js";
import { type Endpoint, openWire, type Wire } from "./wire.js";

type Body = NonNullable<Envelope["body"]>;
type Case = Body["$case"];
type ValueOf<C extends Case> = Extract<Body, { $case: C }>["value"];

export interface ChatClientOptions {
  /** Ack every pushed and synced message as delivered (default true). */
  autoAck?: boolean;
  /** Send heartbeats at the interval the node asks for (default true). */
  heartbeat?: boolean;
  /** How long to wait for a reply (default 10 s). */
  requestTimeoutMs?: number;
}

export interface ChatClientEvents {
  /** A message pushed live, in seq order per conversation (gaps are filled before it is emitted). */
  message: [ChatMessage];
  kicked: [KickPush];
  /** An error the node pushed outside any request (req_id 0), e.g. for an undecodable frame. */
  errorPush: [ErrorResponse];
  close: [string];
}

/**
 * A typed client of one chat node session. Requests are promises matched to replies by
 * req_id; an `error` reply rejects with AppError carrying the node's code (and `redirect`
 * for WRONG_NODE). Live messages are ordered per conversation: a push after a gap first
 * fetches the missing range.
 */
export class ChatClient extends EventEmitter<ChatClientEvents> {
  private nextReqId = 1;
  private readonly pending = new Map<
    number,
    { expect: Case; resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }
  >();
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private readonly lastSeq = new Map<string, number>();
  private delivering: Promise<void> = Promise.resolve();
  closed = false;
  uid = "";

  private constructor(
    private readonly wire: Wire,
    private readonly options: Required<ChatClientOptions>,
  ) {
    super();
    wire.onEnvelope((e) => this.onEnvelope(e));
    wire.onClose((reason) => {
      this.closed = true;
      clearInterval(this.heartbeatTimer);
      for (const [id, p] of this.pending) {
        clearTimeout(p.timer);
        p.reject(new AppError(ErrorCode.UNAVAILABLE, `connection closed: ${reason}`));
        this.pending.delete(id);
      }
      this.emit("close", reason);
    });
  }

  static async connect(endpoint: Endpoint, options: ChatClientOptions = {}): Promise<ChatClient> {
    const wire = await openWire(endpoint);
    return new ChatClient(wire, { autoAck: true, heartbeat: true, requestTimeoutMs: 10_000, ...options });
  }

  async login(uid: string, token: string): Promise<LoginResponse> {
    const reply = await this.request("loginReq", { uid, token }, "loginResp");
    this.uid = uid;
    if (this.options.heartbeat) {
      this.heartbeatTimer = setInterval(() => {
        this.request("heartbeatReq", { clientTimeMs: String(Date.now()) }, "heartbeatResp").catch(() => {});
      }, reply.heartbeatIntervalMs);
      this.heartbeatTimer.unref();
    }
    return reply;
  }

  /** Sends a text; answers the node's ack once the message is stored. */
  sendText(toUid: string, text: string, clientMsgId: string = nanoid()): Promise<SendMessageResponse> {
    return this.request("sendReq", { toUid, clientMsgId, kind: MessageKind.TEXT, text }, "sendResp");
  }

  sync(limit = 0): Promise<SyncResponse> {
    return this.request("syncReq", { limit }, "syncResp");
  }

  /** Every message waiting for this user, acking page by page. */
  async syncAll(): Promise<ChatMessage[]> {
    const all: ChatMessage[] = [];
    for (;;) {
      const page = await this.sync();
      all.push(...page.messages);
      for (const m of page.messages) this.noteSeen(m);
      if (page.messages.length > 0) await this.ack(page.messages);
      if (!page.more) return all;
    }
  }

  async ack(messages: Pick<ChatMessage, "convId" | "seq">[]): Promise<void> {
    const top = new Map<string, number>();
    for (const m of messages) top.set(m.convId, Math.max(top.get(m.convId) ?? 0, m.seq));
    const cursors = [...top].map(([convId, seq]) => ({ convId, seq }));
    await this.request("ackReq", { cursors }, "ackResp");
  }

  async history(query: Partial<HistoryRequest> & { convId: string }): Promise<ChatMessage[]> {
    const reply = await this.request("historyReq", { afterSeq: 0, beforeSeq: 0, limit: 0, ...query }, "historyResp");
    return reply.messages;
  }

  heartbeat(): Promise<ValueOf<"heartbeatResp">> {
    return this.request("heartbeatReq", { clientTimeMs: String(Date.now()) }, "heartbeatResp");
  }

  /** Sends any envelope body and waits for the reply of the expected kind. */
  request<C extends Case, R extends Case>(kind: C, value: ValueOf<C>, expect: R): Promise<ValueOf<R>> {
    return this.requestWith(expect, (reqId) =>
      this.wire.send(Envelope.fromPartial({ reqId, body: { $case: kind, value } as Body })),
    );
  }

  /** Sends whatever `send` writes for a fresh req_id and waits for the reply to that req_id. */
  requestWith<R extends Case>(expect: R, send: (reqId: number) => void): Promise<ValueOf<R>> {
    if (this.closed) return Promise.reject(new AppError(ErrorCode.UNAVAILABLE, "connection closed"));
    const reqId = this.nextReqId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(reqId);
        reject(new AppError(ErrorCode.UNAVAILABLE, `no ${expect} within ${this.options.requestTimeoutMs} ms`));
      }, this.options.requestTimeoutMs);
      this.pending.set(reqId, { expect, resolve: resolve as (v: unknown) => void, reject, timer });
      send(reqId);
    });
  }

  /** Bytes or text as they are: for tests of what a broken client sends. */
  sendRaw(data: Buffer | string): void {
    this.wire.sendRaw(data);
  }

  /** Sends an envelope without waiting for anything. */
  sendEnvelope(envelope: Envelope): void {
    this.wire.send(envelope);
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.once("close", () => resolve());
      this.wire.close();
    });
  }

  private onEnvelope(envelope: Envelope): void {
    const body = envelope.body;
    if (!body) return;
    if (envelope.reqId !== 0) {
      const waiting = this.pending.get(envelope.reqId);
      if (!waiting) return;
      this.pending.delete(envelope.reqId);
      clearTimeout(waiting.timer);
      if (body.$case === "error") {
        const err = new AppError(body.value.code, body.value.message) as AppError & { redirect?: unknown };
        err.redirect = body.value.redirect;
        waiting.reject(err);
      } else if (body.$case !== waiting.expect) {
        waiting.reject(new AppError(ErrorCode.INTERNAL, `expected ${waiting.expect}, got ${body.$case}`));
      } else waiting.resolve(body.value);
      return;
    }
    if (body.$case === "messagePush" && body.value.message) {
      const message = body.value.message;
      this.delivering = this.delivering.then(() => this.deliverInOrder(message)).catch(() => {});
    } else if (body.$case === "kickPush") {
      this.emit("kicked", body.value);
    } else if (body.$case === "error") {
      this.emit("errorPush", body.value);
    }
  }

  /** Emits a pushed message after any missing earlier ones, each once. */
  private async deliverInOrder(message: ChatMessage): Promise<void> {
    const seen = this.lastSeq.get(message.convId);
    if (seen !== undefined && message.seq <= seen) return;
    if (seen !== undefined && message.seq > seen + 1) {
      const missing = await this.history({ convId: message.convId, afterSeq: seen, limit: message.seq - seen - 1 });
      for (const m of missing) if (m.seq < message.seq) this.emitMessage(m);
    }
    this.emitMessage(message);
    if (this.options.autoAck) await this.ack([message]).catch(() => {});
  }

  private emitMessage(message: ChatMessage): void {
    this.noteSeen(message);
    this.emit("message", message);
  }

  private noteSeen(message: ChatMessage): void {
    this.lastSeq.set(message.convId, Math.max(this.lastSeq.get(message.convId) ?? 0, message.seq));
  }
}
