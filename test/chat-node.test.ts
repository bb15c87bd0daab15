import { connect, type Socket } from "node:net";
import { networkInterfaces } from "node:os";
import { ResilientChat } from "@shardchat/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import {
  decodeEnvelope,
  encodeEnvelope,
  encodeFrame,
  envelopeFromJson,
  envelopeToJson,
  FrameDecoder,
} from "../packages/protocol/src/frame.js";
import { DeviceKind, type Envelope, MessageKind } from "../packages/protocol/src/wire.js";
import { type RunningChatNode, startChatNode } from "../src/chat/server.js";
import type { Config } from "../src/config/settings.js";
import { ErrorCode } from "../src/errors.js";
import { ChatNodeServiceService } from "../src/gen/shardchat/v1/chatnode.js";
import { StatusServiceService } from "../src/gen/shardchat/v1/status.js";
import { type GrpcClient, grpcClient, startGrpcServer } from "../src/grpc/api.js";
import { convIdForPair, type Uid } from "../src/ids/identifiers.js";
import { Snowflake } from "../src/ids/snowflake.js";
import { createLogger } from "../src/log/logger.js";
import { RedisNodeRegistry } from "../src/routing/redis/node-registry.js";
import { RedisSessionRoutes } from "../src/routing/redis/session-routes.js";
import { RedisTokenStore } from "../src/routing/redis/token-store.js";
import { createRedis, type RedisClient } from "../src/routing/redis-client.js";
import { secretDigest } from "../src/routing/secret-digest.js";
import { addStatusService } from "../src/status/server.js";
import { createStatusService } from "../src/status/service.js";
import { grpcSessionKicker } from "../src/status/session-kicker.js";
import { MysqlMessageStore } from "../src/storage/mysql/message-store.js";
import { migrate } from "../src/storage/mysql/migrate.js";
import { createPool, type Pool } from "../src/storage/mysql/pool.js";
import { MysqlUserStore } from "../src/storage/mysql/user-store.js";
import { dropTestDatabase, testConfig } from "./helpers/env.js";

type Body = NonNullable<Envelope["body"]>;
type BodyOf<C extends Body["$case"]> = Extract<Body, { $case: C }>["value"];

const WAIT_MS = 5000;

/**
 * What a client has received, in order. Waiting fails the test after WAIT_MS rather than
 * hanging; nothing here measures speed.
 */
class Inbox {
  private readonly received: Envelope[] = [];
  private waiter: (() => void) | undefined;
  closed = false;
  closeCode: number | undefined;

  push(envelope: Envelope): void {
    this.received.push(envelope);
    this.waiter?.();
  }

  markClosed(code?: number): void {
    this.closed = true;
    this.closeCode = code;
    this.waiter?.();
  }

  /** Removes and answers the first envelope matching `match`, waiting for it if needed. */
  async take(match: (e: Envelope) => boolean, what: string): Promise<Envelope> {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const i = this.received.findIndex(match);
      if (i >= 0) return this.received.splice(i, 1)[0] as Envelope;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} within ${WAIT_MS}ms; got ${JSON.stringify(this.received)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  async untilClosed(): Promise<void> {
    const deadline = Date.now() + WAIT_MS;
    while (!this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("connection not closed");
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  pending(): Envelope[] {
    return [...this.received];
  }
}

/** A bare-bones protocol client, over raw TCP or WebSocket (binary or JSON text). */
abstract class RawClient {
  readonly inbox = new Inbox();
  private nextReqId = 1;

  abstract sendEnvelope(envelope: Envelope): void;
  abstract end(): Promise<void>;

  async request(body: Body | undefined): Promise<Envelope> {
    const reqId = this.nextReqId++;
    this.sendEnvelope({ reqId, body });
    return this.inbox.take((e) => e.reqId === reqId, `reply to ${body?.$case ?? "empty"} #${reqId}`);
  }

  /** The reply's body of the expected case; fails with the reply otherwise. */
  async call<C extends Body["$case"]>(body: Body, expected: C): Promise<BodyOf<C>> {
    const reply = await this.request(body);
    if (reply.body?.$case !== expected) throw new Error(`expected ${expected}, got ${JSON.stringify(reply.body)}`);
    return reply.body.value as BodyOf<C>;
  }

  /** The error code a request is answered with. */
  async errorOf(body: Body | undefined): Promise<{ code: ErrorCode; error: BodyOf<"error"> }> {
    const reply = await this.request(body);
    if (reply.body?.$case !== "error") throw new Error(`expected an error, got ${JSON.stringify(reply.body)}`);
    return { code: reply.body.value.code, error: reply.body.value };
  }

  async nextPush<C extends "messagePush" | "kickPush" | "error">(kind: C): Promise<BodyOf<C>> {
    const e = await this.inbox.take((x) => x.reqId === 0 && x.body?.$case === kind, kind);
    return (e.body as { value: unknown }).value as BodyOf<C>;
  }

  login(uid: string, token: string): Promise<BodyOf<"loginResp">> {
    return this.call({ $case: "loginReq", value: { uid, token } }, "loginResp");
  }
}

class TcpClient extends RawClient {
  private constructor(readonly socket: Socket) {
    super();
    const decoder = new FrameDecoder(16 * 1024 * 1024);
    socket.on("data", (chunk: Buffer) => {
      for (const body of decoder.push(chunk)) this.inbox.push(decodeEnvelope(body));
    });
    socket.on("error", () => undefined);
    socket.on("close", () => this.inbox.markClosed());
  }

  static open(port: number): Promise<TcpClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, "127.0.0.1", () => resolve(new TcpClient(socket)));
      socket.once("error", reject);
    });
  }

  sendEnvelope(envelope: Envelope): void {
    this.socket.write(encodeFrame(envelope));
  }

  sendRaw(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  async end(): Promise<void> {
    this.socket.destroy();
  }
}

class WsClient extends RawClient {
  textFramesReceived = 0;

  private constructor(
    readonly ws: WebSocket,
    readonly format: "binary" | "text",
  ) {
    super();
    ws.on("message", (data: Buffer, isBinary) => {
      if (isBinary) this.inbox.push(decodeEnvelope(data));
      else {
        this.textFramesReceived++;
        this.inbox.push(envelopeFromJson(data.toString("utf8")));
      }
    });
    ws.on("error", () => undefined);
    ws.on("close", (code) => this.inbox.markClosed(code));
  }

  static open(url: string, format: "binary" | "text" = "binary"): Promise<WsClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.once("open", () => resolve(new WsClient(ws, format)));
      ws.once("error", reject);
    });
  }

  sendEnvelope(envelope: Envelope): void {
    if (this.format === "text") this.ws.send(envelopeToJson(envelope));
    else this.ws.send(encodeEnvelope(envelope));
  }

  async end(): Promise<void> {
    this.ws.terminate();
  }
}

function sendReq(toUid: string, clientMsgId: string, text: string): Body {
  return { $case: "sendReq", value: { toUid, clientMsgId, kind: MessageKind.TEXT, text } };
}

const heartbeatReq: Body = { $case: "heartbeatReq", value: { clientTimeMs: "1" } };
const MAX_TEXT = 50;
const MAX_FRAME = 4096;

describe("chat node", () => {
  let config: Config;
  let pool: Pool;
  let redis: RedisClient;
  // Revoked tokens' sessions are ended over the nodes' gRPC, as status does in a deployment.
  const kicker = grpcSessionKicker({ authToken: "", tls: undefined });
  let statusServer: { port: number; close(): Promise<void> };
  let status: GrpcClient<typeof StatusServiceService>;
  let node1: RunningChatNode;
  let node2: RunningChatNode;
  const clients: RawClient[] = [];
  /** The chat nodes' calls to status, by method. */
  const statusCalls = new Map<string, number>();
  /** Users by the node the ring gives them. */
  const onNode: Record<string, Uid[]> = { n1: [], n2: [] };
  const tokens = new Map<string, string>();
  let A: Uid; // on n1
  let B: Uid; // on n2
  let C: Uid; // on n1, a bystander
  let nobody: Uid;

  async function tcp(node: RunningChatNode): Promise<TcpClient> {
    const client = await TcpClient.open(node.info.tcpPort);
    clients.push(client);
    return client;
  }

  /** A new user the ring gives to nodeId (users are made until one lands there). */
  async function userOwnedBy(nodeId: string, workerId: number): Promise<Uid> {
    const users = new MysqlUserStore(pool);
    const ids = new Snowflake({ workerId });
    for (let i = 0; i < 60; i++) {
      const uid = ids.next();
      await users.create({
        uid,
        name: `${nodeId}_${i}_${uid.slice(-6)}`,
        email: `${nodeId}_${uid}@example.test`,
        passwordHash: "x",
        createdAt: Date.now(),
      });
      if ((await status.api.getChatNode({ uid })).node?.nodeId === nodeId) return uid;
    }
    throw new Error(`no user of 60 landed on ${nodeId}`);
  }

  async function ws(node: RunningChatNode, format: "binary" | "text" = "binary"): Promise<WsClient> {
    const client = await WsClient.open(node.info.wsUrl, format);
    clients.push(client);
    return client;
  }

  beforeAll(async () => {
    config = testConfig({
      NODE_HEARTBEAT_INTERVAL_MS: 500,
      NODE_TTL_MS: 5000,
      CHAT_MAX_TEXT_CHARS: MAX_TEXT,
      CHAT_MAX_FRAME_BYTES: MAX_FRAME,
      CHAT_PEER_REFRESH_MS: 200,
      // These tests send bursts on one connection; the rate limits have their own test (ops).
      CHAT_CONN_MSGS_PER_SECOND: 1000,
      CHAT_USER_MSGS_PER_SECOND: 1000,
    });
    await migrate(config.MYSQL_URL);
    pool = createPool(config);
    redis = createRedis(config);
    const log = createLogger("chat-test", config.LOG_LEVEL);
    const registry = new RedisNodeRegistry(redis, config.REDIS_KEY_PREFIX);
    const statusApi = createStatusService({
      registry: registry,
      tokens: new RedisTokenStore(redis, config.REDIS_KEY_PREFIX),
      config,
      log,
      kick: kicker.kick,
    });
    statusServer = await startGrpcServer("127.0.0.1:0", (server) =>
      addStatusService(server, statusApi, { registry, probeTimeoutMs: config.NODE_PROBE_TIMEOUT_MS, log }),
    );
    status = grpcClient(StatusServiceService, `127.0.0.1:${statusServer.port}`);

    const users = new MysqlUserStore(pool);
    const messages = new MysqlMessageStore(pool);
    const startNode = (nodeId: string, workerId: number) =>
      startChatNode({
        config: { ...config, CHAT_NODE_ID: nodeId, CHAT_TCP_PORT: 0, CHAT_WS_PORT: 0, CHAT_GRPC_PORT: 0 },
        log,
        messages,
        users,
        routes: new RedisSessionRoutes(redis, config.REDIS_KEY_PREFIX, 120),
        status: countedCalls(status.api, statusCalls),
        ids: new Snowflake({ workerId }),
      });
    node1 = await startNode("n1", 1);
    node2 = await startNode("n2", 2);

    const uids = new Snowflake({ workerId: 3 });
    for (let i = 0; i < 40 && (onNode.n1?.length ?? 0) < 2; i++) {
      const uid = uids.next();
      await users.create({
        uid,
        name: `user${i}_${uid.slice(-6)}`,
        email: `user${i}_${uid}@example.test`,
        passwordHash: "x",
        createdAt: Date.now(),
      });
      const owner = await status.api.getChatNode({ uid });
      expect(owner.error).toBe(ErrorCode.OK);
      onNode[owner.node?.nodeId ?? ""]?.push(uid);
    }
    for (let i = 0; i < 40 && (onNode.n2?.length ?? 0) < 1; i++) {
      const uid = uids.next();
      await users.create({
        uid,
        name: `more${i}_${uid.slice(-6)}`,
        email: `more${i}_${uid}@example.test`,
        passwordHash: "x",
        createdAt: Date.now(),
      });
      const owner = await status.api.getChatNode({ uid });
      onNode[owner.node?.nodeId ?? ""]?.push(uid);
    }
    [A, C] = onNode.n1 as [Uid, Uid];
    B = onNode.n2?.[0] as Uid;
    expect([A, B, C].every(Boolean)).toBe(true);
    nobody = uids.next();
    for (const uid of [A, B, C]) {
      const issued = await status.api.issueToken({ uid });
      tokens.set(uid, issued.token);
    }
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.end()));
    await node1?.close();
    await node2?.close();
    status?.close();
    kicker.close();
    await statusServer?.close();
    await pool?.end();
    if (redis) {
      const keys = await redis.keys(`${config.REDIS_KEY_PREFIX}*`);
      if (keys.length > 0) await redis.del(...keys);
      await redis.quit();
    }
    await dropTestDatabase(config);
  });

  const tokenOf = (uid: string) => tokens.get(uid) as string;

  // Sessions shared by the tests below, which run in order.
  let a: RawClient;
  let b: RawClient;
  let firstMsgId: string;

  it("logs A in over TCP and B over binary WebSocket, each on its own node", async () => {
    const listed = await status.api.listNodes({});
    expect(listed.nodes.map((n) => n.nodeId)).toEqual(["n1", "n2"]);

    a = await tcp(node1);
    const loginA = await a.login(A, tokenOf(A));
    expect(loginA).toEqual({
      uid: A,
      nodeId: "n1",
      heartbeatIntervalMs: config.CHAT_CLIENT_HEARTBEAT_MS,
      idleTimeoutMs: config.CHAT_IDLE_TIMEOUT_MS,
      // No device kind asked: TCP holds the desktop session.
      device: DeviceKind.DESKTOP,
    });
    b = await ws(node2);
    const loginB = await b.login(B, tokenOf(B));
    expect(loginB.nodeId).toBe("n2");

    const beat = await a.call(heartbeatReq, "heartbeatResp");
    expect(Number(beat.serverTimeMs)).toBeGreaterThan(0);
  });

  it("asks status only for the token when the node's own ring places the user there", async () => {
    const before = new Map(statusCalls);
    const again = await tcp(node2);
    // Over TCP: a desktop session beside B's WebSocket one, which stays.
    await again.login(B, tokenOf(B));
    expect(statusCalls.get("checkToken")).toBe((before.get("checkToken") ?? 0) + 1);
    expect(statusCalls.get("getChatNode") ?? 0).toBe(before.get("getChatNode") ?? 0);
    await again.end();
  });

  it("sends a user who reached the wrong node to the right one", async () => {
    const lost = await tcp(node2);
    const asked = statusCalls.get("getChatNode") ?? 0;
    const { code, error } = await lost.errorOf({ $case: "loginReq", value: { uid: A, token: tokenOf(A) } });
    expect(code).toBe(ErrorCode.WRONG_NODE);
    // Its own ring says elsewhere: status, whose answer the redirect names, was asked.
    expect(statusCalls.get("getChatNode")).toBe(asked + 1);
    expect(error.redirect).toEqual({
      nodeId: "n1",
      host: node1.info.host,
      tcpPort: node1.info.tcpPort,
      wsUrl: node1.info.wsUrl,
    });
    await lost.inbox.untilClosed();
  });

  it("refuses a bad token and closes", async () => {
    const intruder = await tcp(node1);
    const { code } = await intruder.errorOf({ $case: "loginReq", value: { uid: C, token: "not-the-token" } });
    expect(code).toBe(ErrorCode.TOKEN_INVALID);
    await intruder.inbox.untilClosed();
  });

  it("closes the connection on every refused login: a malformed one, and a second one on a logged-in session", async () => {
    for (const value of [
      { uid: "0", token: tokenOf(C) },
      { uid: C, token: "" },
      { uid: C, token: tokenOf(C), device: 99 as DeviceKind },
    ]) {
      const client = await tcp(node1);
      const { code } = await client.errorOf({ $case: "loginReq", value });
      expect(code, JSON.stringify(value)).toBe(ErrorCode.INVALID_ARGUMENT);
      await client.inbox.untilClosed();
    }
    // A's phone beside A's desktop session (another device kind: nothing is kicked).
    const phone = await ws(node1);
    await phone.call(
      { $case: "loginReq", value: { uid: A, token: tokenOf(A), device: DeviceKind.MOBILE } },
      "loginResp",
    );
    const again = await phone.errorOf({ $case: "loginReq", value: { uid: A, token: tokenOf(A) } });
    expect(again.code).toBe(ErrorCode.ALREADY_LOGGED_IN);
    await phone.inbox.untilClosed();
    // The desktop session is untouched.
    await a.call(heartbeatReq, "heartbeatResp");
  });

  it("acks A's message after storing it and pushes it to B on the other node", async () => {
    const ack = await a.call(sendReq(B, "m1", "hello B"), "sendResp");
    expect(ack).toMatchObject({ clientMsgId: "m1", seq: 1, convId: convIdForPair(A, B), duplicate: false });
    expect(ack.msgId).toMatch(/^\d+$/);
    firstMsgId = ack.msgId;
    const push = await b.nextPush("messagePush");
    expect(push.message).toMatchObject({
      msgId: ack.msgId,
      seq: 1,
      sender: A,
      recipient: B,
      text: "hello B",
      kind: MessageKind.TEXT,
    });
  });

  it("answers a resend with the stored message and does not push it again", async () => {
    const resend = await a.call(sendReq(B, "m1", "hello B"), "sendResp");
    expect(resend).toMatchObject({ msgId: firstMsgId, seq: 1, duplicate: true });
    const next = await a.call(sendReq(B, "m2", "second"), "sendResp");
    expect(next).toMatchObject({ seq: 2, duplicate: false });
    // Pushes travel in order over one node-to-node channel: had the resend been delivered,
    // it would come before m2's push.
    const push = await b.nextPush("messagePush");
    expect(push.message?.msgId).toBe(next.msgId);
    await b.call(heartbeatReq, "heartbeatResp");
    expect(b.inbox.pending().filter((e) => e.body?.$case === "messagePush")).toEqual([]);
  });

  it("keeps messages for an offline user and syncs exactly those, in seq order", async () => {
    await b.call({ $case: "ackReq", value: { cursors: [{ convId: convIdForPair(A, B), seq: 2 }] } }, "ackResp");
    await b.end();
    await b.inbox.untilClosed();
    const sent: number[] = [];
    for (const id of ["m3", "m4", "m5"]) sent.push((await a.call(sendReq(B, id, `offline ${id}`), "sendResp")).seq);
    expect(sent).toEqual([3, 4, 5]);

    b = await tcp(node2);
    await b.login(B, tokenOf(B));
    const synced = await b.call({ $case: "syncReq", value: { limit: 0 } }, "syncResp");
    expect(synced.more).toBe(false);
    expect(synced.messages.map((m) => [m.seq, m.clientMsgId, m.text])).toEqual([
      [3, "m3", "offline m3"],
      [4, "m4", "offline m4"],
      [5, "m5", "offline m5"],
    ]);
    // With req_id 0 the ack is held but not answered.
    b.sendEnvelope({
      reqId: 0,
      body: { $case: "ackReq", value: { cursors: [{ convId: convIdForPair(A, B), seq: 5 }] } },
    });
    const after = await b.call({ $case: "syncReq", value: { limit: 10 } }, "syncResp");
    expect(after.messages).toEqual([]);
    expect(b.inbox.pending().map((e) => e.body?.$case)).not.toContain("ackResp");

    const page = await b.call(
      { $case: "historyReq", value: { convId: convIdForPair(A, B), afterSeq: 1, beforeSeq: 0, limit: 2 } },
      "historyResp",
    );
    expect(page.messages.map((m) => m.seq)).toEqual([2, 3]);
    const notMine = await b.errorOf({
      $case: "historyReq",
      value: { convId: convIdForPair(A, C), afterSeq: 0, beforeSeq: 0, limit: 10 },
    });
    expect(notMine.code).toBe(ErrorCode.NOT_PARTICIPANT);
  });

  it("kicks A's first session when A logs in again", async () => {
    const second = await tcp(node1);
    await second.login(A, tokenOf(A));
    const kick = await a.nextPush("kickPush");
    expect(kick).toEqual({ reason: ErrorCode.KICKED, message: "logged in elsewhere" });
    await a.inbox.untilClosed();
    a = second;
    const ack = await a.call(sendReq(B, "m6", "from the new session"), "sendResp");
    expect((await b.nextPush("messagePush")).message?.msgId).toBe(ack.msgId);
  });

  it("speaks canonical JSON over WebSocket text frames", async () => {
    const c = (await ws(node1, "text")) as WsClient;
    const login = await c.login(C, tokenOf(C));
    expect(login).toMatchObject({ uid: C, nodeId: "n1" });
    const beat = await c.call(heartbeatReq, "heartbeatResp");
    expect(Number(beat.serverTimeMs)).toBeGreaterThan(0);
    expect(c.textFramesReceived).toBe(2);

    // JSON can carry what protobuf binary cannot: a uid that is not a number.
    c.ws.send(
      JSON.stringify({
        reqId: 99,
        sendReq: { toUid: "12ab", clientMsgId: "c0", kind: "MESSAGE_KIND_TEXT", text: "t" },
      }),
    );
    const bad = await c.inbox.take((e) => e.reqId === 99, "reply to a bad toUid");
    expect(bad.body).toMatchObject({ $case: "error", value: { code: ErrorCode.INVALID_ARGUMENT } });
    const ack = await c.call(sendReq(B, "c1", "json hello"), "sendResp");
    expect((await b.nextPush("messagePush")).message).toMatchObject({ msgId: ack.msgId, sender: C });
    await c.end();
  });

  it("refuses JSON values a field's type cannot hold with INVALID_ARGUMENT, stores nothing and keeps the session", async () => {
    const c = (await ws(node1, "text")) as WsClient;
    await c.login(C, tokenOf(C));
    const conv = convIdForPair(B, C);
    // Written by hand: JSON.stringify cannot write 1e400 or an unquoted 64-bit id.
    const frames: [number, string][] = [
      [101, `{"reqId":101,"historyReq":{"convId":"${conv}","afterSeq":1e400,"limit":5}}`],
      [102, `{"reqId":102,"ackReq":{"cursors":[{"convId":"${conv}","seq":"NaN"}]}}`],
      [103, `{"reqId":103,"sendReq":{"toUid":${B}1,"clientMsgId":"n1","kind":"MESSAGE_KIND_TEXT","text":"t"}}`],
      [104, `{"reqId":104,"historyReq":{"convId":"${conv}","afterSeq":1.5,"limit":5}}`],
      [105, `{"reqId":105,"historyReq":{"convId":"${conv}","afterSeq":-1,"limit":5}}`],
      [106, `{"reqId":106,"sendReq":{"toUid":"1e+21","clientMsgId":"n2","kind":"MESSAGE_KIND_TEXT","text":"t"}}`],
    ];
    for (const [reqId, text] of frames) {
      c.ws.send(text);
      const reply = await c.inbox.take((e) => e.reqId === reqId, `reply to ${text}`);
      expect(reply.body, text).toMatchObject({ $case: "error", value: { code: ErrorCode.INVALID_ARGUMENT } });
    }
    await c.call(heartbeatReq, "heartbeatResp");
    // Nothing was stored for B: the next message B gets is this one.
    const ack = await c.call(sendReq(B, "n3", "after the bad values"), "sendResp");
    expect((await b.nextPush("messagePush")).message).toMatchObject({ msgId: ack.msgId, clientMsgId: "n3" });
    await c.end();
  });

  it("answers undecodable bytes with MALFORMED_FRAME and closes only that connection", async () => {
    const garbage = await tcp(node1);
    const body = Buffer.from([0x0f, 0x01]);
    const frame = Buffer.alloc(4 + body.length);
    frame.writeUInt32BE(body.length, 0);
    body.copy(frame, 4);
    garbage.sendRaw(frame);
    expect((await garbage.nextPush("error")).code).toBe(ErrorCode.MALFORMED_FRAME);
    await garbage.inbox.untilClosed();

    const wsGarbage = (await ws(node2)) as WsClient;
    wsGarbage.ws.send(body);
    expect((await wsGarbage.nextPush("error")).code).toBe(ErrorCode.MALFORMED_FRAME);
    await wsGarbage.inbox.untilClosed();

    const badJson = (await ws(node2, "text")) as WsClient;
    badJson.ws.send("{not json");
    expect((await badJson.nextPush("error")).code).toBe(ErrorCode.MALFORMED_FRAME);
    await badJson.inbox.untilClosed();

    await stillChatting();
  });

  it("refuses an oversized frame (FRAME_TOO_LARGE over TCP, close 1009 over WebSocket)", async () => {
    const big = await tcp(node2);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(MAX_FRAME + 1, 0);
    big.sendRaw(Buffer.concat([header, Buffer.alloc(100)]));
    expect((await big.nextPush("error")).code).toBe(ErrorCode.FRAME_TOO_LARGE);
    await big.inbox.untilClosed();

    const wsBig = (await ws(node2)) as WsClient;
    wsBig.ws.send(Buffer.alloc(MAX_FRAME + 1));
    await wsBig.inbox.untilClosed();
    expect(wsBig.inbox.closeCode).toBe(1009);

    await stillChatting();
  });

  it("answers non-requests with UNKNOWN_MESSAGE_TYPE and keeps the session", async () => {
    expect((await a.errorOf(undefined)).code).toBe(ErrorCode.UNKNOWN_MESSAGE_TYPE);
    const push: Body = { $case: "messagePush", value: { message: undefined } };
    expect((await a.errorOf(push)).code).toBe(ErrorCode.UNKNOWN_MESSAGE_TYPE);
    const resp: Body = {
      $case: "loginResp",
      value: { uid: A, nodeId: "n1", heartbeatIntervalMs: 1, idleTimeoutMs: 1 },
    };
    expect((await a.errorOf(resp)).code).toBe(ErrorCode.UNKNOWN_MESSAGE_TYPE);
    await a.call(heartbeatReq, "heartbeatResp");
  });

  it("answers bad requests with their codes and keeps the session", async () => {
    const cases: [Body, ErrorCode][] = [
      [sendReq("", "x1", "no recipient"), ErrorCode.INVALID_ARGUMENT],
      [sendReq(A, "x3", "to myself"), ErrorCode.INVALID_ARGUMENT],
      [sendReq(B, "", "no client id"), ErrorCode.INVALID_ARGUMENT],
      [sendReq(B, "x".repeat(65), "client id too long"), ErrorCode.INVALID_ARGUMENT],
      [sendReq(B, "x4", ""), ErrorCode.INVALID_ARGUMENT],
      [
        { $case: "sendReq", value: { toUid: B, clientMsgId: "x5", kind: MessageKind.UNSPECIFIED, text: "t" } },
        ErrorCode.INVALID_ARGUMENT,
      ],
      [{ $case: "ackReq", value: { cursors: [] } }, ErrorCode.INVALID_ARGUMENT],
      [{ $case: "historyReq", value: { convId: "", afterSeq: 0, beforeSeq: 0, limit: 1 } }, ErrorCode.INVALID_ARGUMENT],
      [sendReq(nobody, "x6", "anyone there?"), ErrorCode.PEER_NOT_FOUND],
      [sendReq(B, "x7", "y".repeat(MAX_TEXT + 1)), ErrorCode.TEXT_TOO_LONG],
    ];
    for (const [body, expected] of cases) {
      const { code } = await a.errorOf(body);
      expect([JSON.stringify(body).slice(0, 80), code]).toEqual([JSON.stringify(body).slice(0, 80), expected]);
    }
    // Exactly at the limit (in characters, not UTF-16 units) is fine.
    const ok = await a.call(sendReq(B, "x8", "😀".repeat(MAX_TEXT)), "sendResp");
    expect((await b.nextPush("messagePush")).message?.msgId).toBe(ok.msgId);
  });

  it("closes a session whose first request is not a login", async () => {
    const early = await tcp(node1);
    const { code } = await early.errorOf(heartbeatReq);
    expect(code).toBe(ErrorCode.NOT_LOGGED_IN);
    await early.inbox.untilClosed();
    await stillChatting();
  });

  it("reports its session count to status in heartbeats", async () => {
    expect(node1.sessionCount()).toBeGreaterThan(0);
    const deadline = Date.now() + WAIT_MS;
    let reported = 0;
    while (reported === 0 && Date.now() < deadline) {
      const { nodes } = await status.api.listNodes({});
      reported = nodes.find((n) => n.nodeId === "n1")?.connections ?? 0;
      if (reported === 0) await new Promise((r) => setTimeout(r, config.NODE_HEARTBEAT_INTERVAL_MS / 2));
    }
    expect(reported).toBeGreaterThan(0);
  });

  it("keeps node-to-node gRPC on loopback while clients reach every address, and will not open it without INTERNAL_AUTH_TOKEN", async () => {
    const outside = Object.values(networkInterfaces())
      .flat()
      .find((a) => a && a.family === "IPv4" && !a.internal)?.address;
    if (!outside) throw new Error("this test needs an IPv4 address besides loopback");
    const open = (extra: Partial<Config>) =>
      startChatNode({
        config: {
          ...config,
          CHAT_NODE_ID: "n4",
          CHAT_HOST: "0.0.0.0",
          CHAT_TCP_PORT: 0,
          CHAT_WS_PORT: 0,
          CHAT_GRPC_PORT: 0,
          ...extra,
        },
        log: createLogger("chat-test", config.LOG_LEVEL),
        messages: new MysqlMessageStore(pool),
        users: new MysqlUserStore(pool),
        routes: new RedisSessionRoutes(redis, config.REDIS_KEY_PREFIX, 120),
        status: status.api,
        ids: new Snowflake({ workerId: 6 }),
      });
    await expect(open({ CHAT_GRPC_HOST: "0.0.0.0", INTERNAL_AUTH_TOKEN: "" })).rejects.toThrow(/INTERNAL_AUTH_TOKEN/);
    const node = await open({});
    try {
      const grpcPort = Number(node.info.grpcAddr.split(":").at(-1));
      expect(node.info.grpcAddr).toBe(`127.0.0.1:${grpcPort}`);
      const reach = (host: string, port: number) =>
        new Promise<string>((resolve) => {
          const socket = connect({ host, port });
          socket.once("connect", () => {
            socket.destroy();
            resolve("connected");
          });
          socket.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? "error"));
        });
      expect(await reach(outside, node.info.tcpPort)).toBe("connected");
      expect(await reach(outside, grpcPort)).toBe("ECONNREFUSED");
      expect(await reach("127.0.0.1", grpcPort)).toBe("connected");
    } finally {
      await node.close();
    }
  });

  it("renews a route at most once per CHAT_ROUTE_RENEW_MIN_MS however fast a client pings, and budgets requests", async () => {
    const c = await tcp(node1);
    await c.login(C, tokenOf(C));
    const key = `${config.REDIS_KEY_PREFIX}route:${C}`;
    await new Promise((r) => setTimeout(r, 1500));
    const before = await redis.pttl(key);
    expect(before).toBeGreaterThan(0);
    for (let i = 0; i < 20; i++) await c.call(heartbeatReq, "heartbeatResp");
    await new Promise((r) => setTimeout(r, 200));
    // Renewed, the route would live ROUTE_TTL_SECONDS again; it went on ageing instead.
    expect(await redis.pttl(key)).toBeLessThanOrEqual(before);

    // Past CHAT_CONN_REQUESTS_PER_SECOND in one second: RATE_LIMITED, and the session stays.
    await new Promise((r) => setTimeout(r, 1000));
    const replies = await Promise.all(
      Array.from({ length: config.CHAT_CONN_REQUESTS_PER_SECOND + 10 }, () => c.request(heartbeatReq)),
    );
    const limited = replies.filter((e) => e.body?.$case === "error" && e.body.value.code === ErrorCode.RATE_LIMITED);
    expect(limited.length).toBeGreaterThanOrEqual(10);
    await new Promise((r) => setTimeout(r, 1000));
    await c.call(heartbeatReq, "heartbeatResp");
    await c.end();
  });

  it("ends the session of a revoked token on its node, and a session whose token expires", async () => {
    const web = await status.api.issueToken({ uid: C, device: "web" });
    const c = (await ws(node1)) as WsClient;
    await c.call({ $case: "loginReq", value: { uid: C, token: web.token, device: DeviceKind.WEB } }, "loginResp");
    expect(await status.api.revokeTokens({ uid: C, token: web.token, all: false })).toEqual({
      error: ErrorCode.OK,
      revoked: 1,
    });
    expect((await c.nextPush("kickPush")).reason).toBe(ErrorCode.TOKEN_INVALID);
    await c.inbox.untilClosed();
    // The revoked token opens nothing any more; C's other token still works.
    const again = (await ws(node1)) as WsClient;
    const refused = await again.errorOf({
      $case: "loginReq",
      value: { uid: C, token: web.token, device: DeviceKind.WEB },
    });
    expect(refused.code).toBe(ErrorCode.TOKEN_INVALID);
    expect((await status.api.checkToken({ uid: C, token: tokenOf(C) })).error).toBe(ErrorCode.OK);

    // A token that expires in a moment: its session ends then, TOKEN_EXPIRED.
    const soon = `soon-${Date.now()}-token-0123456789`;
    await new RedisTokenStore(redis, config.REDIS_KEY_PREFIX).put(C, {
      token: secretDigest(soon),
      expiresAtMs: Date.now() + 1500,
      device: "mobile",
    });
    const phone = await tcp(node1);
    await phone.call({ $case: "loginReq", value: { uid: C, token: soon, device: DeviceKind.MOBILE } }, "loginResp");
    expect((await phone.nextPush("kickPush")).reason).toBe(ErrorCode.TOKEN_EXPIRED);
    await phone.inbox.untilClosed();
  });

  async function stillChatting(): Promise<void> {
    const ack = await a.call(sendReq(B, `alive-${Date.now()}-${Math.random()}`, "still here"), "sendResp");
    expect((await b.nextPush("messagePush")).message?.msgId).toBe(ack.msgId);
  }

  it("paces logins past CHAT_LOGINS_PER_SECOND: RATE_LIMITED and closed, before status is asked", async () => {
    const paced = await startChatNode({
      config: {
        ...config,
        CHAT_NODE_ID: "n4",
        CHAT_TCP_PORT: 0,
        CHAT_WS_PORT: 0,
        CHAT_GRPC_PORT: 0,
        CHAT_LOGINS_PER_SECOND: 2,
        CHAT_LOGIN_BURST: 2,
      },
      log: createLogger("chat-test", config.LOG_LEVEL),
      messages: new MysqlMessageStore(pool),
      users: new MysqlUserStore(pool),
      routes: new RedisSessionRoutes(redis, config.REDIS_KEY_PREFIX, 120),
      status: countedCalls(status.api, statusCalls),
      ids: new Snowflake({ workerId: 7 }),
    });
    try {
      const attempt = async () => {
        const c = await tcp(paced);
        const { code } = await c.errorOf({ $case: "loginReq", value: { uid: C, token: "not-the-token" } });
        await c.inbox.untilClosed();
        return code;
      };
      // The burst is admitted (and refused further on, for the token).
      expect([await attempt(), await attempt()]).toEqual([ErrorCode.TOKEN_INVALID, ErrorCode.TOKEN_INVALID]);
      const asked = statusCalls.get("checkToken") ?? 0;
      expect(await attempt()).toBe(ErrorCode.RATE_LIMITED);
      expect(statusCalls.get("checkToken") ?? 0).toBe(asked);
      // Two a second: a token is back within half a second.
      await new Promise((r) => setTimeout(r, 600));
      expect(await attempt()).toBe(ErrorCode.TOKEN_INVALID);

      // The SDK, paced, goes back to the same node after its pause: it does not ask gate again.
      const X = await userOwnedBy("n4", 8);
      const issued = await status.api.issueToken({ uid: X });
      // Spend the bucket, so the SDK's first attempt is paced.
      for (let i = 0; i < 5 && (await attempt()) !== ErrorCode.RATE_LIMITED; i++);
      let relogins = 0;
      const chat = await ResilientChat.open(
        {
          uid: X,
          token: issued.token,
          expiresAtMs: Number(issued.expiresAtMs),
          nodeId: "n4",
          host: "127.0.0.1",
          port: paced.info.tcpPort,
          wsUrl: paced.info.wsUrl,
        },
        {
          relogin: async () => {
            relogins += 1;
            throw new Error("gate was asked");
          },
          retryDelayMs: 300,
          maxRetryDelayMs: 600,
          // Asking gate (which throws here) on every later attempt would give up after these.
          maxAttempts: 10,
        },
      );
      try {
        expect(chat.connected).toBe(true);
        expect(relogins).toBe(0);
      } finally {
        await chat.close();
      }
    } finally {
      await paced.close();
    }
  });

  it("times out silent connections, serves other nodes over gRPC, and leaves status on close", async () => {
    const extra = await startChatNode({
      config: {
        ...config,
        CHAT_NODE_ID: "n3",
        CHAT_TCP_PORT: 0,
        CHAT_WS_PORT: 0,
        CHAT_GRPC_PORT: 0,
        CHAT_LOGIN_TIMEOUT_MS: 200,
        CHAT_IDLE_TIMEOUT_MS: 400,
      },
      log: createLogger("chat-test", config.LOG_LEVEL),
      messages: new MysqlMessageStore(pool),
      users: new MysqlUserStore(pool),
      routes: new RedisSessionRoutes(redis, config.REDIS_KEY_PREFIX, 120),
      status: status.api,
      ids: new Snowflake({ workerId: 4 }),
    });
    const peer = grpcClient(ChatNodeServiceService, extra.info.grpcAddr);
    try {
      expect((await status.api.listNodes({})).nodes.map((n) => n.nodeId)).toContain("n3");

      const silent = await tcp(extra);
      expect((await silent.nextPush("error")).code).toBe(ErrorCode.NOT_LOGGED_IN);
      await silent.inbox.untilClosed();

      // Some user the ring now gives to n3.
      const X = await userOwnedBy("n3", 5);
      const token = (await status.api.issueToken({ uid: X })).token;

      const x1 = await tcp(extra);
      await x1.login(X, token);
      const message = {
        convId: convIdForPair(X, A),
        msgId: "1",
        seq: 1,
        sender: A,
        recipient: X,
        clientMsgId: "g1",
        kind: MessageKind.TEXT,
        text: "via grpc",
        sentAtMs: "1",
      };
      const delivered = await peer.api.deliver({ message, toUids: [X, nobody] });
      expect(delivered).toEqual({ error: ErrorCode.OK, offlineUids: [nobody] });
      expect((await x1.nextPush("messagePush")).message).toEqual(message);
      const kicked = await peer.api.kick({ uid: X, sessionId: "", reason: ErrorCode.KICKED, device: "" });
      expect(kicked.kicked).toBe(true);
      expect((await x1.nextPush("kickPush")).reason).toBe(ErrorCode.KICKED);
      await x1.inbox.untilClosed();

      const x2 = await tcp(extra);
      await x2.login(X, token);
      expect((await x2.nextPush("kickPush")).reason).toBe(ErrorCode.IDLE_TIMEOUT);
      await x2.inbox.untilClosed();
      const lingering = await tcp(extra);
      await extra.close();
      await lingering.inbox.untilClosed();
    } finally {
      peer.close();
      await extra.close();
    }
    expect((await status.api.listNodes({})).nodes.map((n) => n.nodeId)).toEqual(["n1", "n2"]);
  });
});

/** api with every call counted by method name in `calls` (the calls still go to status). */
function countedCalls<T extends object>(api: T, calls: Map<string, number>): T {
  return new Proxy(api, {
    get(target, name, receiver) {
      const value = Reflect.get(target, name, receiver);
      if (typeof value !== "function" || typeof name !== "string") return value;
      return (...args: unknown[]) => {
        calls.set(name, (calls.get(name) ?? 0) + 1);
        return value.apply(target, args);
      };
    },
  });
}
