import { ChatClient } from "@shardchat/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startChatLoad } from "../bench/load/chat.js";
import { DeliveryChecker, decodeText, encodeText, mergeSummaries } from "../bench/load/checker.js";
import type { Ticket } from "../bench/load/drivers.js";
import { startGroupLoad } from "../bench/load/group.js";
import { runConnect, runLoginStorm } from "../bench/load/scenarios.js";
import { startEmbedded, startSocketIo, startWsRelay, type Target } from "../bench/load/targets.js";

describe("the delivery checker", () => {
  it("passes each message once and in order, and fails a duplicate, a reorder and a loss", () => {
    const clean = new DeliveryChecker();
    for (let i = 0; i < 3; i++) clean.received("a>b", clean.nextToSend("a>b"));
    expect(clean.summary()).toMatchObject({ sent: 3, received: 3, ok: true });

    const dup = new DeliveryChecker();
    dup.received("a>b", dup.nextToSend("a>b"));
    dup.received("a>b", 1);
    expect(dup.summary()).toMatchObject({ duplicates: 1, lost: 0, ok: false });
    expect(dup.summary().examples).toEqual(["a>b: #1 arrived again"]);

    const reordered = new DeliveryChecker();
    reordered.nextToSend("a>b");
    reordered.nextToSend("a>b");
    reordered.received("a>b", 2);
    reordered.received("a>b", 1);
    expect(reordered.summary()).toMatchObject({ received: 2, duplicates: 0, lost: 0, ok: false });
    expect(reordered.summary().outOfOrder).toBeGreaterThan(0);

    const lost = new DeliveryChecker();
    lost.nextToSend("a>b");
    lost.nextToSend("a>b");
    lost.received("a>b", 1);
    expect(lost.summary()).toMatchObject({ lost: 1, ok: false });
    expect(lost.summary().examples).toEqual(["a>b: 1 of 2 not received, the first #2"]);
    expect(mergeSummaries([clean.summary(), lost.summary()])).toMatchObject({ sent: 5, lost: 1, ok: false });
  });

  it("reads back the number and time a load text carries, at the asked size", () => {
    const text = encodeText(42, 1700000000123.5, 64);
    expect(text).toHaveLength(64);
    expect(decodeText(text)).toEqual({ n: 42, sentAtMs: 1700000000123.5 });
    expect(decodeText("hello")).toBeUndefined();
  });
});

describe("load scenarios against a real shardchat (one process, 2 chat nodes, MySQL + Redis)", () => {
  let target: Target;
  beforeAll(async () => {
    target = await startEmbedded({ chatNodes: 2 });
  }, 120_000);
  afterAll(async () => {
    await target?.stop();
  });

  it("chat-1to1 delivers every message exactly once and in order, across nodes", async () => {
    const pairs = await target.pairs(3);
    expect(pairs.some(([a, b]) => a.node !== b.node)).toBe(true);
    const load = await startChatLoad({ pairs, rate: 60, workers: 2 });
    await runFor(1500);
    const report = await load.stop();
    expect(report.sendErrors).toBe(0);
    expect(report.check.received).toBeGreaterThan(0);
    expect(report.check).toMatchObject({ duplicates: 0, outOfOrder: 0, lost: 0, ok: true });
    expect(report.check.received).toBe(report.check.sent);
    expect(report.latencyMs.count).toBe(report.delivered);
  }, 60_000);

  it("the same run fails when a duplicate or a loss is injected on the receiving side", async () => {
    const dup = await startChatLoad({ pairs: await target.pairs(2), window: 2, faults: { duplicateEvery: 5 } });
    await runFor(1000);
    const dupReport = await dup.stop();
    expect(dupReport.check.duplicates).toBeGreaterThan(0);
    expect(dupReport.check.ok).toBe(false);

    const drop = await startChatLoad({
      pairs: await target.pairs(2),
      window: 2,
      faults: { dropEvery: 5 },
      // What was dropped never arrives: no use waiting the default 10 s for it.
      drainTimeoutMs: 500,
    });
    await runFor(1000);
    const dropReport = await drop.stop();
    expect(dropReport.check.lost).toBeGreaterThan(0);
    expect(dropReport.check.ok).toBe(false);
  }, 60_000);

  it("the SDK counts its own sent messages as seen: a reply after them is no gap to fetch", async () => {
    const [[a, b]] = (await target.pairs(1)) as [[Ticket, Ticket]];
    const open = async (t: Ticket) => {
      if (t.kind !== "shardchat") throw new Error("shardchat tickets expected");
      const client = await ChatClient.connect({ transport: "tcp", host: t.host, port: t.port });
      await client.login(t.id, t.token);
      let histories = 0;
      const history = client.history.bind(client);
      client.history = (q) => {
        histories += 1;
        return history(q);
      };
      const got: string[] = [];
      client.on("message", (m) => got.push(m.text));
      return { client, got, histories: () => histories };
    };
    const [ca, cb] = [await open(a), await open(b)];
    // Both talk in turn: each one's messages take seqs between the other's.
    for (let i = 0; i < 5; i++) {
      const toB = new Promise((r) => cb.client.once("message", r));
      await ca.client.sendText(b.id, `a${i}`);
      await toB;
      const toA = new Promise((r) => ca.client.once("message", r));
      await cb.client.sendText(a.id, `b${i}`);
      await toA;
    }
    expect(cb.got).toEqual(["a0", "a1", "a2", "a3", "a4"]);
    expect(ca.got).toEqual(["b0", "b1", "b2", "b3", "b4"]);
    expect(ca.histories() + cb.histories()).toBe(0);
    await Promise.all([ca.client.close(), cb.client.close()]);
  }, 60_000);

  it("group-fanout: every member gets every post once and in order, and an injected duplicate fails it", async () => {
    const load = await startGroupLoad({ members: await target.tickets(6), senders: 2, rate: 10 });
    await runFor(1000);
    const report = await load.stop();
    expect(report.sendErrors).toBe(0);
    expect(report.sent).toBeGreaterThan(0);
    // Each post reaches the 5 members other than its sender.
    expect(report.check).toMatchObject({ sent: report.sent * 5, received: report.sent * 5, ok: true });

    const dup = await startGroupLoad({ members: await target.tickets(4), rate: 10, faults: { duplicateEvery: 3 } });
    await runFor(800);
    const dupReport = await dup.stop();
    expect(dupReport.check.duplicates).toBeGreaterThan(0);
    expect(dupReport.check.ok).toBe(false);
  }, 60_000);

  it("connect holds N idle connections spread over source addresses and measures memory", async () => {
    // 10 per source address here (20,000 in a real run) so that three addresses are used.
    const report = await runConnect(target, { count: 30, holdMs: 100, perAddress: 10 });
    expect(report).toMatchObject({ held: 30, failed: 0, ok: true });
    expect(report.sourceAddresses).toEqual(["127.0.0.2", "127.0.0.3", "127.0.0.4"]);
    expect(report.rssAfterBytes).toBeGreaterThan(0);
  }, 60_000);

  it("login-storm logs users in through gate and connects them to their nodes", async () => {
    const report = await runLoginStorm(target, { users: 4 });
    expect(report).toMatchObject({ loggedIn: 4, connected: 4, failed: 0, ok: true });
    expect(report.loginLatencyMs.count).toBe(4);
  }, 60_000);
});

describe("the references run under the same tool and check", () => {
  for (const [name, start] of [
    ["plain ws relay", () => startWsRelay(2)],
    ["Socket.IO + redis adapter", () => startSocketIo(2)],
  ] as const) {
    it(`${name}: chat-1to1 passes the exactly-once check`, async () => {
      const target = await start();
      try {
        const load = await startChatLoad({ pairs: await target.pairs(2), window: 2 });
        await runFor(700);
        const report = await load.stop();
        expect(report.check.received).toBeGreaterThan(0);
        expect(report.check.ok).toBe(true);
      } finally {
        await target.stop();
      }
    }, 60_000);
  }
});

/** Lets the load run a while (no assertion on time: the checks hold whatever the speed). */
function runFor(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
