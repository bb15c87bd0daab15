import { Agent, request } from "undici";
import { signedHeaders, signingKey } from "./signature.js";

/** One signed POST: the event's id (webhook-id) and its JSON body. */
export interface WebhookCall {
  url: string;
  id: string;
  body: string;
  timeoutMs: number;
}

/**
 * What an endpoint answered: `ok` for a 2xx (with the body read, up to a bound: the before-send
 * hook's decision), else why not (a status, a timeout, a refused connection).
 */
export type WebhookAnswer = { ok: true; status: number; body: string } | { ok: false; error: string };

/** Delivers one call (the port; HttpWebhookSender is the adapter). Never throws. */
export interface WebhookSender {
  post(call: WebhookCall): Promise<WebhookAnswer>;
  close(): Promise<void>;
}

/** Most of an answer's body read (a before-send decision is a few hundred bytes). */
const MAX_ANSWER_BYTES = 64 * 1024;

/**
 * Webhook calls over HTTP with undici: signed per the Standard Webhooks scheme (signature.ts),
 * each within its timeout, keep-alive connections reused across calls to the same endpoint.
 */
export class HttpWebhookSender implements WebhookSender {
  readonly #key: Buffer;
  readonly #agent: Agent;
  readonly #now: () => number;

  constructor(secret: string, now: () => number = Date.now) {
    this.#key = signingKey(secret);
    this.#agent = new Agent({ keepAliveTimeout: 10_000, connections: 64 });
    this.#now = now;
  }

  async post(call: WebhookCall): Promise<WebhookAnswer> {
    const timestamp = Math.floor(this.#now() / 1000);
    try {
      const res = await request(call.url, {
        method: "POST",
        dispatcher: this.#agent,
        headers: {
          "content-type": "application/json",
          "user-agent": "shardchat-webhooks",
          ...signedHeaders(this.#key, call.id, timestamp, call.body),
        },
        body: call.body,
        signal: AbortSignal.timeout(call.timeoutMs),
        headersTimeout: call.timeoutMs,
        bodyTimeout: call.timeoutMs,
      });
      const body = await readBounded(res.body);
      if (res.statusCode >= 200 && res.statusCode < 300) return { ok: true, status: res.statusCode, body };
      return { ok: false, error: `HTTP ${res.statusCode}` };
    } catch (err) {
      const e = err as { name?: string; code?: string; message?: string };
      if (e.name === "TimeoutError" || e.name === "AbortError")
        return { ok: false, error: `timeout ${call.timeoutMs} ms` };
      return { ok: false, error: e.code ?? e.message ?? String(err) };
    }
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }
}

/** The body as text, up to MAX_ANSWER_BYTES (the rest is read and dropped, so the connection is reused). */
async function readBounded(body: AsyncIterable<Buffer>): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    if (size >= MAX_ANSWER_BYTES) continue;
    chunks.push(chunk);
    size += chunk.length;
  }
  return Buffer.concat(chunks).subarray(0, MAX_ANSWER_BYTES).toString("utf8");
}
