import type { ChatClient } from "@shardchat/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Envelope } from "../packages/protocol/src/wire.js";
import { AppError, ErrorCode } from "../src/errors.js";
import { groupConvId } from "../src/ids/identifiers.js";
import { MysqlMessageStore } from "../src/storage/mysql/message-store.js";
import { createPool } from "../src/storage/mysql/pool.js";
import { type MemoryNode, startMemoryNode } from "./helpers/memory-node.js";
import { freePort } from "./helpers/ports.js";
import { openRawTcp, pollUntil } from "./helpers/raw-tcp.js";

/**
 * What single handlers answer, on one chat node over the embedded adapters (no MariaDB or
 * Redis): milliseconds per case. The suites on real services cover the same paths end to end.
 */
const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => "answered",
    (err: unknown) => (err instanceof AppError ? err.code : String(err)),
  );

describe("handlers on the embedded adapters", () => {
  let memory: MemoryNode;
  let alice: { uid: string; client: ChatClient };
  let bob: { uid: string; client: ChatClient };

  beforeAll(async () => {
    memory = await startMemoryNode({ CHAT_MAX_TEXT_CHARS: 20 });
    alice = await memory.user("alice");
    bob = await memory.user("bob");
  });
  afterAll(() => memory?.close());

  it("send: stores in seq order and pushes; refuses a bad recipient (INVALID_ARGUMENT) and an over-long text (TEXT_TOO_LONG)", async () => {
    const got = new Promise<string>((resolve) => bob.client.once("message", (m) => resolve(m.text)));
    const first = await alice.client.sendText(bob.uid, "hello");
    const second = await alice.client.sendText(bob.uid, "again");
    expect([first.seq, second.seq]).toEqual([1, 2]);
    expect(await got).toBe("hello");
    expect(await codeOf(alice.client.sendText("0", "x"))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await codeOf(alice.client.sendText(bob.uid, "x".repeat(21)))).toBe(ErrorCode.TEXT_TOO_LONG);
    // A resend (same clientMsgId) is the stored message again.
    const resent = await alice.client.sendText(bob.uid, "hello", "fixed-id");
    expect(await alice.client.sendText(bob.uid, "hello", "fixed-id")).toMatchObject({
      seq: resent.seq,
      duplicate: true,
    });
  });

  it("ack: answered with a req_id; at req_id 0 held, and no error comes back", async () => {
    const convId = (await alice.client.sendText(bob.uid, "to ack")).convId;
    const replies: string[] = [];
    await bob.client.request("ackReq", { cursors: [{ convId, seq: 1 }] }, "ackResp");
    bob.client.sendEnvelope(
      Envelope.fromPartial({ reqId: 0, body: { $case: "ackReq", value: { cursors: [{ convId, seq: 99 }] } } }),
    );
    bob.client.on("errorPush", (e) => replies.push(`error ${e.code}`));
    // The sync after it sees the held cursor: nothing of this conversation is waiting.
    const page = await bob.client.sync();
    expect(page.messages.filter((m) => m.convId === convId)).toEqual([]);
    expect(replies).toEqual([]);
  });

  it("history: a group's conversation answers NOT_GROUP_MEMBER to someone outside it", async () => {
    expect(await codeOf(bob.client.history({ convId: groupConvId("123456789") }))).toBe(ErrorCode.NOT_GROUP_MEMBER);
    expect(await codeOf(bob.client.history({ convId: "" }))).toBe(ErrorCode.INVALID_ARGUMENT);
  });

  it("answers a request it does not know with UNKNOWN_MESSAGE_TYPE and keeps the session", async () => {
    expect(
      await codeOf(
        alice.client.request(
          "sendResp",
          { clientMsgId: "", msgId: "0", seq: 0, convId: "", sentAtMs: "0", duplicate: false },
          "sendResp",
        ),
      ),
    ).toBe(ErrorCode.UNKNOWN_MESSAGE_TYPE);
    expect((await alice.client.sendText(bob.uid, "still here")).seq).toBeGreaterThan(0);
  });
});

describe("a node serves only what it has a store for", () => {
  it("without a group store, group requests answer UNKNOWN_MESSAGE_TYPE; friends still work", async () => {
    const memory = await startMemoryNode({}, { groups: undefined });
    try {
      const alice = await memory.user("alice");
      const bob = await memory.user("bob");
      expect(await codeOf(alice.client.listGroups())).toBe(ErrorCode.UNKNOWN_MESSAGE_TYPE);
      expect(await codeOf(alice.client.createGroup("nowhere", [bob.uid]))).toBe(ErrorCode.UNKNOWN_MESSAGE_TYPE);
      await alice.client.applyFriend(bob.uid, "hi");
      expect((await bob.client.friendApplications()).map((a) => a.from?.uid)).toEqual([alice.uid]);
      expect((await alice.client.sendText(bob.uid, "still here")).seq).toBe(1);
    } finally {
      await memory.close();
    }
  });
});

describe("a storage failure on the embedded node", () => {
  it("answers the code's name, never the driver's text or an internal address (which go to the log)", async () => {
    // The real MySQL adapter, pointed at a port where nothing listens: a real driver error.
    const pool = createPool({ MYSQL_URL: `mysql://root@127.0.0.1:${await freePort()}/nowhere`, MYSQL_POOL_SIZE: 1 });
    const memory = await startMemoryNode({}, { messages: new MysqlMessageStore(pool) });
    try {
      const alice = await memory.user("alice");
      const bob = await memory.user("bob");
      const failure = await alice.client.sendText(bob.uid, "lost?").then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(failure).toBeInstanceOf(AppError);
      expect(failure).toMatchObject({ code: ErrorCode.STORAGE_UNAVAILABLE, message: "STORAGE_UNAVAILABLE" });
    } finally {
      await memory.close();
      await pool.end();
    }
  });
});

describe("connection caps of a chat node", () => {
  /** A raw TCP connection, and whether the node closed it and the error it said first. */
  async function connectRaw(port: number) {
    const raw = await openRawTcp(port);
    // Refused sockets are closed at once; an accepted one stays open past this.
    const settled = async () => {
      await pollUntil(raw.isClosed, 250);
      const first = raw.received[0]?.body;
      return { closed: raw.isClosed(), code: first?.$case === "error" ? first.value.code : undefined };
    };
    return { socket: raw.socket, settled };
  }

  it("refuses a client address past CHAT_MAX_CONNECTIONS_PER_ADDR, and takes it again once one closes", async () => {
    const memory = await startMemoryNode({ CHAT_MAX_CONNECTIONS_PER_ADDR: 3 });
    try {
      const port = memory.node.info.tcpPort;
      const open = [await connectRaw(port), await connectRaw(port), await connectRaw(port)];
      for (const c of open) expect(await c.settled()).toEqual({ closed: false, code: undefined });
      const fourth = await connectRaw(port);
      expect(await fourth.settled()).toEqual({ closed: true, code: ErrorCode.RATE_LIMITED });
      open[0]?.socket.destroy();
      await new Promise((r) => setTimeout(r, 50));
      const again = await connectRaw(port);
      expect(await again.settled()).toEqual({ closed: false, code: undefined });
      for (const c of [...open, again]) c.socket.destroy();
    } finally {
      await memory.close();
    }
  });

  it("refuses sockets past CHAT_MAX_PENDING_LOGINS that have not logged in; a login frees its slot", async () => {
    const memory = await startMemoryNode({ CHAT_MAX_PENDING_LOGINS: 2 });
    try {
      // memory.user() logs one in: it does not count.
      const alice = await memory.user("alice");
      const port = memory.node.info.tcpPort;
      const waiting = [await connectRaw(port), await connectRaw(port)];
      for (const c of waiting) expect(await c.settled()).toEqual({ closed: false, code: undefined });
      expect(await (await connectRaw(port)).settled()).toEqual({ closed: true, code: ErrorCode.UNAVAILABLE });
      // The logged-in session goes on meanwhile.
      expect(Number((await alice.client.heartbeat()).serverTimeMs)).toBeGreaterThan(0);
      waiting[0]?.socket.destroy();
      await new Promise((r) => setTimeout(r, 50));
      const next = await connectRaw(port);
      expect(await next.settled()).toEqual({ closed: false, code: undefined });
      for (const c of [...waiting, next]) c.socket.destroy();
    } finally {
      await memory.close();
    }
  });
});
