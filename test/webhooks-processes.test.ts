import { readFileSync } from "node:fs";
import { type ChatClient, type LoginAnswer, openChat } from "@shardchat/sdk";
import mysql, { type RowDataPacket } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "./helpers/processes.js";
import { type Services, startServices } from "./helpers/services.js";
import { eventOf, startWebhookReceiver, type WebhookReceiver } from "./helpers/webhook-receiver.js";

// Webhooks (issue 18) with every service its own process, as deployed: status, verify, gate and
// two chat node processes (src/chat/main.ts), each composing its stores with the outbox and
// running a webhook dispatcher beside its nodes. The chat node process that holds the database's
// webhook lease is killed with SIGKILL while messages flow: the other process's dispatcher takes
// the lease over and every stored message's event reaches the receiver.

const SECRET = "whsec_cHJvY2Vzc2VzLXdlYmhvb2stc2VjcmV0";
const LEASE_MS = 2000;

let receiver: WebhookReceiver;
let s: Services;

beforeAll(async () => {
  receiver = await startWebhookReceiver(SECRET);
  s = await startServices("whp", 2, {
    WEBHOOK_ENDPOINTS: `message.after_send=${receiver.url()}`,
    WEBHOOK_SECRET: SECRET,
    WEBHOOK_POLL_MS: 50,
    WEBHOOK_LEASE_MS: LEASE_MS,
    WEBHOOK_RETRY_BASE_MS: 50,
    WEBHOOK_RETRY_MAX_MS: 500,
    CHAT_CONN_MSGS_PER_SECOND: 100_000,
    CHAT_USER_MSGS_PER_SECOND: 100_000,
    // The dispatchers log when they take the lease (info).
    LOG_LEVEL: "info",
  });
}, 240_000);

afterAll(async () => {
  await s?.stop();
  await receiver?.close();
});

interface Person {
  uid: string;
  login: LoginAnswer;
  chat: ChatClient;
}

/** The chat node process whose log says it took the webhook lease. */
function leaseHolder(): string | undefined {
  return s.procs
    .filter((p) => p.name.startsWith("whp-chat-"))
    .find((p) => readFileSync(p.logFile, "utf8").includes("webhook lease taken"))?.name;
}

describe("webhooks across chat node processes", () => {
  it("still sends every stored message's event after the dispatching chat node process is killed mid-run", async () => {
    const people: Person[] = [];
    // Two people or more on each node: the ring places by uid, so four alone may all land on one.
    const on = (node: "chat-1" | "other") =>
      people.filter((p) => (p.login.nodeId === "chat-1") === (node === "chat-1")).length;
    for (let i = 0; on("chat-1") < 2 || on("other") < 2; i++) {
      if (i > 24) throw new Error("the ring did not put two people on each chat node");
      const registered = await s.register(`whp${i}`);
      const login = await s.gate.login(registered.email, registered.password);
      const chat = await openChat(login, "tcp", { heartbeat: false, ackDelayMs: 0 });
      people.push({ uid: registered.uid, login, chat });
    }
    expect(new Set(people.map((p) => p.login.nodeId)).size).toBe(2);
    await people[0]?.chat.sendText(people[1]?.uid ?? "", "warm-up");
    await waitFor("a dispatcher delivers", () => receiver.calls.length > 0);
    const holder = await waitFor("the lease holder", () => leaseHolder());
    const victim = s.procs.find((p) => p.name === holder);
    if (!victim) throw new Error("no lease holder");

    // Slow answers: the holder has calls in flight when it dies.
    receiver.answer = () => ({ status: 200, delayMs: 20 });
    let sending = true;
    const flows = people.map(async (p, i) => {
      for (let n = 0; sending; n++) {
        const to = people[(i + 1 + (n % (people.length - 1))) % people.length] as Person;
        try {
          await p.chat.sendText(to.uid, `p ${i} #${n}`);
        } catch {
          return; // the killed process's clients
        }
      }
    });
    await new Promise((r) => setTimeout(r, 800));
    victim.child.kill("SIGKILL");
    await victim.stop();
    await new Promise((r) => setTimeout(r, 800));
    sending = false;
    await Promise.all(flows);
    receiver.answer = () => ({ status: 200 });

    const conn = await mysql.createConnection(s.config.MYSQL_URL);
    let stored: { conv_id: string; seq: number; body: string }[];
    try {
      const [rows] = await conn.query<RowDataPacket[]>("SELECT conv_id, seq, body FROM messages ORDER BY conv_id, seq");
      stored = rows as typeof stored;
    } finally {
      await conn.end();
    }
    expect(stored.length).toBeGreaterThan(20);
    const firsts = () =>
      receiver
        .firsts()
        .map(eventOf)
        .filter((e) => e.type === "message.after_send");
    // The survivor takes the lease once the killed holder's lapses.
    await waitFor(`${stored.length} events`, () => firsts().length >= stored.length, 30_000 + LEASE_MS);
    const got = firsts();
    expect(got.length).toBe(stored.length);
    const key = (convId: unknown, seq: unknown) => `${convId}/${seq}`;
    expect(new Set(got.map((e) => key(e.data.convId, e.data.seq)))).toEqual(
      new Set(stored.map((r) => key(r.conv_id, r.seq))),
    );
    // In seq order per conversation, each with its stored text.
    const texts = new Map(stored.map((r) => [key(r.conv_id, r.seq), r.body]));
    for (const convId of new Set(stored.map((r) => r.conv_id))) {
      const seqs = got.filter((e) => e.data.convId === convId).map((e) => Number(e.data.seq));
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    }
    expect(got.every((e) => texts.get(key(e.data.convId, e.data.seq)) === e.data.text)).toBe(true);
    expect(receiver.calls.every((c) => c.verified)).toBe(true);
    // The survivor's log says it took over.
    const survivor = s.procs.find((p) => p.name.startsWith("whp-chat-") && p.name !== holder);
    expect(readFileSync(survivor?.logFile ?? "", "utf8")).toContain("webhook lease taken");
    for (const p of people) await p.chat.close().catch(() => undefined);
  });
});
