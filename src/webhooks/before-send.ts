import { z } from "zod";
import { AppError, ErrorCode } from "../errors.js";
import type { Logger } from "../log/logger.js";
import { sampled } from "../log/logger.js";
import type { Metrics } from "../metrics/metrics.js";
import { fitsChars } from "../text/chars.js";
import type { WebhookSender } from "./sender.js";

/** The message a send would store, as the before-send hook sees it (README "Webhooks"). */
export interface BeforeSendMessage {
  convId: string;
  sender: string;
  /** A 1:1 message's recipient, or a group message's group. */
  recipient?: string;
  groupId?: string;
  clientMsgId: string;
  /** text, custom, file. */
  kind: string;
  text: string;
  file?: { id: string; name: string; size: number; contentType: string } | undefined;
  custom?: { type: string; payload: unknown } | undefined;
}

/** The hook's decision. */
export type BeforeSendDecision =
  | { action: "allow" }
  | { action: "reject"; code?: number | undefined; message?: string | undefined }
  | { action: "rewrite"; text: string };

/** The range of a reject's own code, passed to the sender in MESSAGE_REJECTED's message. */
export const REJECT_CODE_MIN = 1;
export const REJECT_CODE_MAX = 9999;
/** Most characters of a reject's message the sender is shown. */
export const REJECT_MESSAGE_MAX_CHARS = 500;

const decisionSchema = z.discriminatedUnion("action", [
  z.object({ action: z.literal("allow") }),
  z.object({
    action: z.literal("reject"),
    code: z.number().int().min(REJECT_CODE_MIN).max(REJECT_CODE_MAX).optional(),
    message: z.string().max(REJECT_MESSAGE_MAX_CHARS).optional(),
  }),
  z.object({ action: z.literal("rewrite"), text: z.string() }),
]);

/**
 * Asked before a 1:1 or group message is stored (WEBHOOK_BEFORE_SEND_URL). Answers the
 * decision; when the hook fails (timeout, non-2xx, an answer that is not one of the three),
 * allow with `failOpen`, else throws AppError(UNAVAILABLE): nothing is stored and the client may
 * send again.
 */
export interface BeforeSendHook {
  check(message: BeforeSendMessage, msgId: string): Promise<BeforeSendDecision>;
}

export interface HttpBeforeSendHookOptions {
  url: string;
  sender: WebhookSender;
  timeoutMs: number;
  failOpen: boolean;
  /** CHAT_MAX_TEXT_CHARS: a rewrite is checked as a client's text is (longer, or empty for a text message, is a failed answer). */
  maxTextChars: number;
  log: Logger;
  metrics?: Pick<Metrics, "webhookBeforeSend">;
}

/** The before-send hook over HTTP: one signed POST per message, waited for up to the timeout. */
export class HttpBeforeSendHook implements BeforeSendHook {
  constructor(private readonly o: HttpBeforeSendHookOptions) {}

  async check(message: BeforeSendMessage, msgId: string): Promise<BeforeSendDecision> {
    const id = `bs_${msgId}`;
    const body = JSON.stringify({
      type: "message.before_send",
      id,
      timestamp: new Date().toISOString(),
      data: message,
    });
    const answer = await this.o.sender.post({ url: this.o.url, id, body, timeoutMs: this.o.timeoutMs });
    let failure: string;
    if (answer.ok) {
      const decision = parseDecision(answer.body);
      if (decision && (decision.action !== "rewrite" || this.fits(decision.text, message.kind))) {
        this.o.metrics?.webhookBeforeSend.inc({ outcome: decision.action });
        return decision;
      }
      failure = decision ? "a rewrite that is not a valid text" : "an answer that is not allow, reject or rewrite";
    } else {
      failure = answer.error;
    }
    this.o.metrics?.webhookBeforeSend.inc({ outcome: this.o.failOpen ? "failed_open" : "failed_closed" });
    this.o.log.warn(
      sampled({ error: failure, convId: message.convId, failOpen: this.o.failOpen }),
      "before-send hook failed",
    );
    if (this.o.failOpen) return { action: "allow" };
    throw new AppError(ErrorCode.UNAVAILABLE, "the message could not be checked; send it again later");
  }

  private fits(text: string, kind: string): boolean {
    return fitsText(text, kind, this.o.maxTextChars);
  }
}

/** A rewrite's text as a client's is checked (send.ts validateContent): within the limit, and not empty for a text message. */
function fitsText(text: string, kind: string, max: number): boolean {
  return fitsChars(text, max) && (kind !== "text" || text.length > 0);
}

function parseDecision(text: string): BeforeSendDecision | undefined {
  try {
    const parsed = decisionSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** What the sender is told of a reject: MESSAGE_REJECTED, its message "<code>: <message>" (either part optional). */
export function rejection(decision: { code?: number | undefined; message?: string | undefined }): AppError {
  const text = decision.message ?? "";
  const shown = decision.code !== undefined ? `${decision.code}: ${text}`.trimEnd() : text;
  return new AppError(ErrorCode.MESSAGE_REJECTED, shown === "" ? "rejected" : shown);
}
