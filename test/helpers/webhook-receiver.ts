import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { ROOT } from "./processes.js";

/** One call a receiver got, as it arrived. */
export interface ReceivedCall {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** What the README's verification example said of it. */
  verified: boolean;
  atMs: number;
}

/** What the receiver answers a call with: a status and a body, after an optional delay. */
export type Answer = { status: number; body?: string; delayMs?: number };

/**
 * A webhook receiver on a local port (a real HTTP server, as an endpoint would run one). Every
 * call is checked with the README's verification example, loaded from README.md itself, and
 * answered by `answer` (200 by default).
 */
export interface WebhookReceiver {
  url(path?: string): string;
  calls: ReceivedCall[];
  /** The calls whose id was not seen before, in arrival order (what a receiver that drops repeats keeps). */
  firsts(): ReceivedCall[];
  answer: (call: ReceivedCall) => Answer;
  close(): Promise<void>;
}

export type Verify = (secret: string, headers: IncomingHttpHeaders, body: string, nowSeconds?: number) => boolean;

/** The README's `verifyWebhook` (chapter "Webhooks"), as a receiver would paste it. */
export async function readmeVerifier(): Promise<Verify> {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const start = readme.indexOf("<!-- webhook-verify-example -->");
  if (start < 0) throw new Error("README.md has no webhook verification example");
  const block = /```js\n([\s\S]*?)```/.exec(readme.slice(start));
  if (!block?.[1]) throw new Error("the webhook verification example is not a js block");
  const dir = mkdtempSync(join(tmpdir(), "sc-webhook-readme-"));
  const file = join(dir, "verify.mjs");
  writeFileSync(file, block[1]);
  const mod = (await import(pathToFileURL(file).href)) as { verifyWebhook: Verify };
  return mod.verifyWebhook;
}

export async function startWebhookReceiver(secret: string): Promise<WebhookReceiver> {
  const verify = await readmeVerifier();
  const calls: ReceivedCall[] = [];
  const receiver: WebhookReceiver = {
    url: (path = "/hook") => `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`,
    calls,
    firsts() {
      const seen = new Set<string>();
      return calls.filter((c) => {
        const id = String(c.headers["webhook-id"]);
        if (seen.has(id)) return false;
        seen.add(id);
        return true;
      });
    },
    answer: () => ({ status: 200 }),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const call: ReceivedCall = {
        path: req.url ?? "",
        headers: req.headers,
        body,
        verified: verify(secret, req.headers, body),
        atMs: Date.now(),
      };
      calls.push(call);
      const { status, body: reply = "", delayMs = 0 } = receiver.answer(call);
      const send = () => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(reply);
      };
      if (delayMs > 0) setTimeout(send, delayMs);
      else send();
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return receiver;
}

/** A call's JSON body. */
export function eventOf(call: ReceivedCall): {
  type: string;
  id: string;
  timestamp: string;
  data: Record<string, unknown>;
} {
  return JSON.parse(call.body);
}
