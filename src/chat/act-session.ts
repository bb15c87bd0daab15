import { nanoid } from "nanoid";
import type { Envelope } from "../../packages/protocol/src/wire.js";
import { ErrorCode } from "../errors.js";
import type { Uid } from "../storage/ports.js";
import { OutboundFrame } from "./outbound.js";
import { errorEnvelope, type Session } from "./session.js";

/**
 * The session a Server API request runs on (ChatNodeService.Act, issue 18): logged in as `uid`,
 * with no connection. It is in no registry, so no push is addressed to it; the reply to its
 * one request is captured (a frame pushed to it anyway is dropped).
 */
export class ActSession implements Session {
  readonly id = `api-${nanoid()}`;
  readonly transport = "api" as const;
  readonly remote = "server-api";
  readonly remoteHost = "server-api";
  readonly openedAtMs = Date.now();
  lastActivityMs = this.openedAtMs;
  routeRenewedAtMs = 0;
  tokenExpiresAtMs = 0;
  readonly reply: Promise<Envelope>;
  #answer!: (envelope: Envelope) => void;
  #closed = false;
  #listeners: ((reason: ErrorCode | undefined) => void)[] = [];

  constructor(
    readonly uid: Uid,
    readonly privileged: boolean,
    private readonly reqId: number,
  ) {
    this.reply = new Promise((resolve) => {
      this.#answer = resolve;
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  send(envelope: Envelope | OutboundFrame): void {
    if (envelope instanceof OutboundFrame || envelope.reqId !== this.reqId) return;
    this.#answer(envelope);
  }

  close(reason?: ErrorCode, message?: string): void {
    if (this.#closed) return;
    this.#closed = true;
    // A handler that closed without answering (it cannot happen to a logged-in request today).
    this.#answer(errorEnvelope(this.reqId, reason ?? ErrorCode.INTERNAL, message ?? "closed without a reply"));
    for (const listener of this.#listeners.splice(0)) listener(reason);
  }

  onClose(listener: (reason: ErrorCode | undefined) => void): void {
    if (this.#closed) return;
    this.#listeners.push(listener);
  }

  /** After the request ran: its reply, or INTERNAL if the handler answered nothing. */
  settle(): void {
    this.#answer(errorEnvelope(this.reqId, ErrorCode.INTERNAL, "the request answered nothing"));
    this.#closed = true;
    this.#listeners = [];
  }
}
