import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { type ChatClient, GateClient, type LoginAnswer, openChat } from "@shardchat/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ChatMessage, DeviceKind, type KickPush } from "../packages/protocol/src/wire.js";
import type { Config } from "../src/config/settings.js";
import { AppError, ErrorCode } from "../src/errors.js";
import { StatusServiceService } from "../src/gen/shardchat/v1/status.js";
import { grpcClient } from "../src/grpc/api.js";
import { convIdForPair, type Uid } from "../src/ids/identifiers.js";
import { migrate } from "../src/storage/mysql/migrate.js";
import { configEnv, dropTestDatabase, testConfig } from "./helpers/env.js";
import { freePort } from "./helpers/ports.js";
import { type ServiceProcess, spawnService, waitFor } from "./helpers/processes.js";
import { codeFromMail, startSmtpSink } from "./helpers/smtp-sink.js";

/**
 * The distributed core end to end: status, verify, gate and two chat nodes, each its own
 * process, on the machine's MariaDB and Redis, with verify mail read from a real SMTP server.
 */
const CODE_TTL_SECONDS = 3;
const MAX_FRAME = 4096;

let smtp: Awaited<ReturnType<typeof startSmtpSink>>;
let config: Config;
let gate: GateClient;
const procs: ServiceProcess[] = [];
const clients: ChatClient[] = [];
let status: ReturnType<typeof grpcClient<typeof StatusServiceService>>;

async function registerUser(name: string): Promise<{ uid: Uid; email: string; password: string }> {
  const email = `${name}@example.test`;
  const password = `pw-${name}-secret`;
  await gate.requestVerifyCode(email);
  const code = codeFromMail(await smtp.waitForMail(email));
  const { uid } = await gate.register({ user: name, email, password, code });
  return { uid, email, password };
}

async function connect(login: LoginAnswer, transport: "tcp" | "ws" | "ws-json"): Promise<ChatClient> {
  const client = await openChat(login, transport);
  clients.push(client);
  return client;
}

function nextMessage(client: ChatClient): Promise<ChatMessage> {
  return once(client, "message").then(([m]) => m as ChatMessage);
}

beforeAll(async () => {
  smtp = await startSmtpSink();
  const [gatePort, verifyPort, statusPort] = [await freePort(), await freePort(), await freePort()];
  config = testConfig({
    SMTP_URL: smtp.url,
    VERIFY_CODE_TTL_SECONDS: CODE_TTL_SECONDS,
    VERIFY_COOLDOWN_SECONDS: 1,
    VERIFY_MAX_PER_ADDR_PER_HOUR: 1000,
    GATE_PORT: gatePort,
    VERIFY_ADDR: `127.0.0.1:${verifyPort}`,
    STATUS_ADDR: `127.0.0.1:${statusPort}`,
    NODE_HEARTBEAT_INTERVAL_MS: 500,
    NODE_TTL_MS: 3000,
    CHAT_MAX_FRAME_BYTES: MAX_FRAME,
    // Every internal call below (gate → status and verify, chat → status, chat → chat) needs it.
    INTERNAL_AUTH_TOKEN: randomBytes(16).toString("hex"),
  });
  await migrate(config.MYSQL_URL);
  const env = configEnv(config);
  procs.push(spawnService("status", "src/status/main.ts", env));
  procs.push(spawnService("verify", "src/verify/main.ts", env));
  for (const n of [1, 2]) {
    procs.push(
      spawnService(`chat-${n}`, "src/chat/main.ts", {
        ...env,
        CHAT_NODE_ID: `chat-${n}`,
        CHAT_TCP_PORT: String(await freePort()),
        CHAT_WS_PORT: String(await freePort()),
        CHAT_GRPC_PORT: String(await freePort()),
      }),
    );
  }
  procs.push(spawnService("gate", "src/gate/main.ts", env));
  gate = new GateClient(`http://127.0.0.1:${gatePort}`);
  status = grpcClient(StatusServiceService, config.STATUS_ADDR, { authToken: config.INTERNAL_AUTH_TOKEN });
  await waitFor("two chat nodes registered", async () => (await status.api.listNodes({})).nodes.length === 2);
  await waitFor("gate", async () => (await fetch(`http://127.0.0.1:${gatePort}/healthz`)).ok);
}, 90_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => {})));
  await Promise.all(procs.map((p) => p.stop()));
  status?.close();
  await smtp?.close();
  if (config) await dropTestDatabase(config);
});

describe("distributed core, every service its own process", () => {
  let alice: { uid: Uid; email: string; password: string };
  let bob: { uid: Uid; email: string; password: string };
  let aliceLogin: LoginAnswer;
  let bobLogin: LoginAnswer;
  let aliceChat: ChatClient;
  let bobChat: ChatClient;

  it("registers users with codes from real mail and places two of them on different nodes", async () => {
    alice = await registerUser("alice");
    aliceLogin = await gate.login(alice.email, alice.password);
    // Keep registering until the ring puts someone on the other node.
    for (let i = 0; i < 20; i++) {
      const candidate = await registerUser(`bob${i}`);
      const login = await gate.login(`bob${i}`, candidate.password);
      if (login.nodeId !== aliceLogin.nodeId) {
        bob = candidate;
        bobLogin = login;
        break;
      }
    }
    expect(bobLogin, "some user lands on the other chat node").toBeDefined();
    expect(new Set([aliceLogin.nodeId, bobLogin.nodeId])).toEqual(new Set(["chat-1", "chat-2"]));
    expect(aliceLogin.token).toMatch(/^[\w-]{20,}$/);
    expect(aliceLogin.port).toBeGreaterThan(0);
    expect(bobLogin.wsUrl).toMatch(/^ws:\/\//);
  });

  it("delivers A→B across nodes (A on TCP, B on WebSocket) after acking A with the stored id", async () => {
    aliceChat = await connect(aliceLogin, "tcp");
    bobChat = await connect(bobLogin, "ws");
    const arriving = nextMessage(bobChat);
    const ack = await aliceChat.sendText(bob.uid, "hello across nodes", "c-1");
    expect(ack).toMatchObject({
      clientMsgId: "c-1",
      seq: 1,
      convId: convIdForPair(alice.uid, bob.uid),
      duplicate: false,
    });
    expect(BigInt(ack.msgId)).toBeGreaterThan(0n);
    const got = await arriving;
    expect(got).toMatchObject({
      msgId: ack.msgId,
      seq: 1,
      sender: alice.uid,
      recipient: bob.uid,
      text: "hello across nodes",
    });
  });

  it("B offline: A sends 3 more, B logs in again and syncs exactly those 3 in order", async () => {
    await new Promise((r) => setTimeout(r, 200)); // B's auto-ack of #1 is in flight; let it land
    await bobChat.close();
    const acks = [];
    for (const text of ["one", "two", "three"]) acks.push(await aliceChat.sendText(bob.uid, text));
    expect(acks.map((a) => a.seq)).toEqual([2, 3, 4]);
    bobLogin = await gate.login(bob.email, bob.password);
    bobChat = await connect(bobLogin, "ws-json");
    const synced = await bobChat.syncAll();
    expect(synced.map((m) => [m.seq, m.text])).toEqual([
      [2, "one"],
      [3, "two"],
      [4, "three"],
    ]);
    expect(await bobChat.syncAll()).toEqual([]);
  });

  it("stores a resend with the same client message id once", async () => {
    const first = await aliceChat.sendText(bob.uid, "only once", "c-dup");
    const again = await aliceChat.sendText(bob.uid, "only once", "c-dup");
    expect(again).toMatchObject({ msgId: first.msgId, seq: first.seq, duplicate: true });
    const history = await aliceChat.history({ convId: first.convId });
    expect(history.filter((m) => m.clientMsgId === "c-dup")).toHaveLength(1);
    expect(history.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);
  });

  it("kicks the older session when A logs in again", async () => {
    const kicked = once(aliceChat, "kicked").then(([k]) => k as KickPush);
    const closed = once(aliceChat, "close");
    const again = await gate.login("alice", alice.password);
    const aliceChat2 = await connect(again, "tcp");
    expect((await kicked).reason).toBe(ErrorCode.KICKED);
    await closed;
    aliceChat = aliceChat2;
    const arriving = nextMessage(bobChat);
    await aliceChat.sendText(bob.uid, "from the new session");
    expect((await arriving).text).toBe("from the new session");
  });

  describe("bad input gets its documented error and the nodes keep serving", () => {
    async function expectCode(p: Promise<unknown>, code: ErrorCode): Promise<void> {
      const err = await p.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(AppError);
      expect((err as AppError).code).toBe(code);
    }

    it("a wrong verify code", async () => {
      await gate.requestVerifyCode("carol@example.test");
      await smtp.waitForMail("carol@example.test");
      await expectCode(
        gate.register({ user: "carol", email: "carol@example.test", password: "long-enough", code: "000000x" }),
        ErrorCode.INVALID_ARGUMENT,
      );
      const mailed = "999999";
      await expectCode(
        gate.register({ user: "carol", email: "carol@example.test", password: "long-enough", code: mailed }),
        ErrorCode.VERIFY_CODE_WRONG,
      );
    });

    it("an expired verify code", async () => {
      await gate.requestVerifyCode("dave@example.test");
      const code = codeFromMail(await smtp.waitForMail("dave@example.test"));
      await new Promise((r) => setTimeout(r, CODE_TTL_SECONDS * 1000 + 500));
      await expectCode(
        gate.register({ user: "dave", email: "dave@example.test", password: "long-enough", code }),
        ErrorCode.VERIFY_CODE_EXPIRED,
      );
    });

    it("a bad token", async () => {
      await expectCode(openChat({ ...bobLogin, token: "not-the-token-at-all" }, "tcp"), ErrorCode.TOKEN_INVALID);
    });

    it("a token bound to the web presented by a desktop session", async () => {
      const web = await gate.login(alice.email, alice.password, "web");
      expect(web.device).toBe("web");
      await expectCode(openChat(web, "tcp", { device: DeviceKind.DESKTOP }), ErrorCode.TOKEN_INVALID);
      // The SDK claims the kind the token was issued for: the same token opens a web session.
      const session = await openChat(web, "tcp");
      await session.close();
    });

    it("a garbage frame closes only that connection", async () => {
      const victim = await connect(await gate.login(alice.email, alice.password), "tcp");
      aliceChat = victim; // the new login kicked the previous session
      const error = once(victim, "errorPush");
      const closed = once(victim, "close");
      victim.sendRaw(Buffer.from([0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0xff]));
      expect((await error)[0]).toMatchObject({ code: ErrorCode.MALFORMED_FRAME });
      await closed;
    });

    it("an oversized frame closes only that connection", async () => {
      const victim = await connect(await gate.login(alice.email, alice.password), "tcp");
      const error = once(victim, "errorPush");
      const closed = once(victim, "close");
      const header = Buffer.alloc(4);
      header.writeUInt32BE(MAX_FRAME + 1);
      victim.sendRaw(header);
      expect((await error)[0]).toMatchObject({ code: ErrorCode.FRAME_TOO_LARGE });
      await closed;
    });

    it("an unknown message type and missing fields get errors on a session that stays up", async () => {
      aliceChat = await connect(await gate.login(alice.email, alice.password), "tcp");
      // Field 99 is no body the protocol knows: [req_id][field 99 varint 1], framed.
      const unknown = aliceChat.requestWith("ackResp", (reqId) => {
        const body = Buffer.from([0x08, reqId, 0x98, 0x06, 0x01]);
        const header = Buffer.alloc(4);
        header.writeUInt32BE(body.length);
        aliceChat.sendRaw(Buffer.concat([header, body]));
      });
      await expectCode(unknown, ErrorCode.UNKNOWN_MESSAGE_TYPE);
      await expectCode(
        aliceChat.request("messagePush", { message: undefined }, "ackResp"),
        ErrorCode.UNKNOWN_MESSAGE_TYPE,
      );
      await expectCode(
        aliceChat.request("sendReq", { toUid: "0", clientMsgId: "", kind: 0, text: "" }, "sendResp"),
        ErrorCode.INVALID_ARGUMENT,
      );
      await expectCode(aliceChat.sendText("123456789", "nobody there"), ErrorCode.PEER_NOT_FOUND);
    });

    it("still delivers across nodes after all of that", async () => {
      const arriving = nextMessage(bobChat);
      const ack = await aliceChat.sendText(bob.uid, "still here");
      expect((await arriving).msgId).toBe(ack.msgId);
      expect(procs.every((p) => p.child.exitCode === null)).toBe(true);
    });
  });
});
