import { type ChatClient, GateClient, type LoginAnswer, openChat, type Transport } from "@shardchat/sdk";
import { Redis } from "ioredis";
import mysql, { type RowDataPacket } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChatMessage } from "../../packages/protocol/src/wire.js";
import { AppError } from "../../src/errors.js";
import { instanceOf } from "../../src/storage/sharded/shard-map.js";
import { readShardMap } from "../../src/storage/sharded/shards.js";
import { waitFor } from "../helpers/processes.js";
import { codeFromMail } from "../helpers/smtp-sink.js";
import {
  replicasCaughtUp,
  restoreKilledRedisMaster,
  type StackServices,
  stackInfraUp,
  startStackServices,
} from "../helpers/stack.js";

/**
 * The local multi-shard stack as `npm run stack:up` starts it (3 MariaDB shards, a 6-node
 * Redis Cluster, status, verify, gate, 3 chat nodes, each its own process): users on every
 * chat node talk to users on every other node; then a Redis master dies mid-chat.
 */
const ROUNDS = 3;

interface User {
  name: string;
  login: LoginAnswer;
  chat: ChatClient;
  /** Every message pushed or synced to this user, in arrival order. */
  received: ChatMessage[];
}

let stack: StackServices;
let gate: GateClient;
const users: User[] = [];
/** msgId → the acked message, for every send the node acknowledged. */
const acked = new Map<string, { convId: string; seq: number; to: string; text: string }>();

async function register(name: string): Promise<LoginAnswer> {
  const email = `${name}@stack.test`;
  const password = `pw-${name}-secret`;
  await gate.requestVerifyCode(email);
  const code = codeFromMail(await stack.smtp.waitForMail(email));
  await gate.register({ user: name, email, password, code });
  return gate.login(email, password);
}

/** Sends one message and records it when acked; an error (a dependency failing over) is not acked. */
async function send(from: User, to: User, text: string): Promise<boolean> {
  try {
    const ack = await from.chat.sendText(to.login.uid, text);
    acked.set(ack.msgId, { convId: ack.convId, seq: ack.seq, to: to.login.uid, text });
    return true;
  } catch (err) {
    if (err instanceof AppError) return false;
    throw err;
  }
}

/** Every ordered pair of users on different chat nodes sends one message. */
async function roundAcrossNodes(label: string): Promise<number> {
  let sent = 0;
  const pairs = users.flatMap((a) =>
    users.filter((b) => b.login.nodeId !== a.login.nodeId).map((b) => [a, b] as const),
  );
  const results = await Promise.all(pairs.map(([a, b]) => send(a, b, `${label} ${a.name}→${b.name}`)));
  for (const ok of results) if (ok) sent++;
  return sent;
}

/** Each acked message to `user` was received exactly once, and per conversation in seq order. */
function checkDelivery(user: User): void {
  const mine = [...acked.entries()].filter(([, m]) => m.to === user.login.uid);
  const counts = new Map<string, number>();
  for (const m of user.received) counts.set(m.msgId, (counts.get(m.msgId) ?? 0) + 1);
  for (const [msgId, m] of mine) expect(counts.get(msgId), `${user.name} got "${m.text}"`).toBe(1);
  const byConv = new Map<string, number[]>();
  for (const m of user.received) byConv.set(m.convId, [...(byConv.get(m.convId) ?? []), m.seq]);
  for (const seqs of byConv.values()) expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
}

beforeAll(async () => {
  await stackInfraUp();
  // Every user sends a burst per round; the send limits are not what this file tests.
  stack = await startStackServices("chat", {
    chatNodes: 3,
    env: { CHAT_CONN_MSGS_PER_SECOND: "1000", CHAT_USER_MSGS_PER_SECOND: "1000" },
  });
  gate = new GateClient(stack.gateUrl);
  // Register until every chat node owns two users (the ring decides, not us).
  const byNode = new Map<string, LoginAnswer[]>();
  for (let i = 0; [...byNode.values()].filter((l) => l.length >= 2).length < 3; i++) {
    if (i > 60) throw new Error(`the ring placed 60 users on ${byNode.size} nodes only`);
    const login = await register(`user${i}`);
    const list = byNode.get(login.nodeId) ?? [];
    if (list.length < 2) byNode.set(login.nodeId, [...list, login]);
  }
  const transports: Transport[] = ["tcp", "ws", "ws-json"];
  let t = 0;
  for (const [nodeId, logins] of byNode) {
    for (const login of logins) {
      const chat = await openChat(login, transports[t++ % transports.length]);
      const user: User = { name: `${nodeId}/${login.uid}`, login, chat, received: [] };
      chat.on("message", (m) => user.received.push(m));
      users.push(user);
    }
  }
}, 300_000);

afterAll(async () => {
  await Promise.all(users.map((u) => u.chat.close().catch(() => undefined)));
  await stack?.stop();
  // Whatever happened above, leave the Redis Cluster whole (a killed master rejoins as replica).
  await stackInfraUp();
}, 300_000);

describe("the local multi-shard stack", () => {
  it("delivers 1:1 messages across every pair of the 3 chat nodes once each, in order", async () => {
    expect(new Set(users.map((u) => u.login.nodeId)).size).toBe(3);
    for (let round = 0; round < ROUNDS; round++) {
      expect(await roundAcrossNodes(`round ${round}`)).toBe(users.length * (users.length - 2));
    }
    await waitFor("every acked message delivered", () => users.every((u) => countFor(u) === expectedFor(u)));
    for (const user of users) checkDelivery(user);
  });

  it("keeps each conversation's messages on the shard its id maps to, and nowhere else", async () => {
    const control = mysql.createPool({ uri: stack.mysqlUrls[0] as string, connectionLimit: 1 });
    const map = await readShardMap(control as never);
    await control.end();
    if (!map) throw new Error("no shard map stored");
    const rowsBy = new Map<string, Map<string, number>>();
    for (const [i, url] of stack.mysqlUrls.entries()) {
      const conn = await mysql.createConnection({ uri: url });
      const [rows] = await conn.query<RowDataPacket[]>("SELECT conv_id, COUNT(*) AS n FROM messages GROUP BY conv_id");
      await conn.end();
      rowsBy.set(`s${i}`, new Map(rows.map((r) => [String(r.conv_id), Number(r.n)])));
    }
    const convs = new Set([...acked.values()].map((m) => m.convId));
    const perInstance: Record<string, number> = {};
    for (const convId of convs) {
      const home = instanceOf(map, convId).id;
      perInstance[home] = (perInstance[home] ?? 0) + 1;
      for (const [id, rows] of rowsBy) {
        if (id === home) expect(rows.get(convId), `${convId} on its shard ${home}`).toBeGreaterThan(0);
        else expect(rows.has(convId), `${convId} also on ${id}`).toBe(false);
      }
    }
    console.log(`${convs.size} conversations per MySQL instance:`, perInstance);
  });

  it("loses no acked message when a Redis master dies mid-chat, and chat resumes", async () => {
    const victim = await masterOfRouteKey(users[0] as User);
    // Acked = replicated: wait until every replica has every write so far.
    await replicasCaughtUp(stack.stack.redisPorts);
    const before = acked.size;
    // Chat goes on while the master dies: sends that fail in the window are not acked.
    const during = roundAcrossNodes("during failover");
    const killer = new Redis(victim, "127.0.0.1", { lazyConnect: true, maxRetriesPerRequest: 0 });
    await killer.call("SHUTDOWN", "NOSAVE").catch(() => undefined);
    killer.disconnect();
    console.log(`shut down the redis master on ${victim}`);
    const ackedDuring = await during;
    console.log(`${ackedDuring} of ${users.length * (users.length - 2)} sends acked while the master died`);
    await waitFor("a replica promoted", async () => (await masterOfRouteKey(users[0] as User)) !== victim, 30_000);

    // Chat resumes: a full round is acked again (retry a send the failover window refused).
    await waitFor(
      "a full round acked after failover",
      async () => {
        return (await roundAcrossNodes("after failover")) === users.length * (users.length - 2);
      },
      60_000,
    );
    expect(acked.size).toBeGreaterThan(before);
    await waitFor(
      "every acked message delivered after failover",
      () => users.every((u) => countFor(u) >= expectedFor(u)),
      60_000,
    );
    for (const user of users) checkDelivery(user);
    // And stored: every acked message is in its conversation's history, once.
    for (const user of users) {
      for (const convId of new Set([...acked.values()].filter((m) => m.to === user.login.uid).map((m) => m.convId))) {
        const history = await user.chat.history({ convId, limit: 100 });
        const ids = history.map((m) => m.msgId);
        expect(new Set(ids).size).toBe(ids.length);
        for (const [msgId, m] of acked) if (m.convId === convId) expect(ids).toContain(msgId);
      }
    }
    await restoreKilledRedisMaster(stack.stack, victim);
  }, 600_000);
});

function expectedFor(user: User): number {
  return [...acked.values()].filter((m) => m.to === user.login.uid).length;
}

function countFor(user: User): number {
  const ids = new Set([...acked.entries()].filter(([, m]) => m.to === user.login.uid).map(([id]) => id));
  return user.received.filter((m) => ids.has(m.msgId)).length;
}

/** The port of the Redis master that holds user's session route. */
async function masterOfRouteKey(user: User): Promise<number> {
  const port = stack.stack.redisPorts[0] as number;
  for (const candidate of stack.stack.redisPorts) {
    const node = new Redis(candidate, "127.0.0.1", { maxRetriesPerRequest: 1, lazyConnect: true });
    node.on("error", () => undefined); // a dead node refuses: the catch below asks the next one
    try {
      await node.connect();
      const slot = Number(await node.call("CLUSTER", "KEYSLOT", `${stack.redisPrefix}route:${user.login.uid}`));
      const ranges = (await node.call("CLUSTER", "SLOTS")) as [number, number, [string, number]][];
      const range = ranges.find(([from, to]) => slot >= from && slot <= to);
      if (range) return Number(range[2][1]);
    } catch {
      // A dead node: ask the next one.
    } finally {
      node.disconnect();
    }
  }
  return port;
}
