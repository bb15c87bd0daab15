import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChatClient } from "@shardchat/sdk";
import { AdminClient, GateClient } from "@shardchat/sdk";
import type { FastifyInstance } from "fastify";
import type { RowDataPacket } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ChatMessage, GroupEventKind, type GroupEventPush, MessageKind } from "../packages/protocol/src/wire.js";
import { runAdminCommand } from "../src/admin/api-key-command.js";
import { createAdminStores } from "../src/admin/stores.js";
import { createStorageAdapters, type StorageAdapters } from "../src/compose.js";
import type { Config } from "../src/config/settings.js";
import { AppError, ErrorCode } from "../src/errors.js";
import { buildGateApp, type GateDeps } from "../src/gate/app.js";
import { convIdForPair, groupConvId } from "../src/ids/identifiers.js";
import { Snowflake } from "../src/ids/snowflake.js";
import { createLogger } from "../src/log/logger.js";
import { LogMailer } from "../src/mail/log-mailer.js";
import { MemoryNodeRegistry } from "../src/routing/memory/node-registry.js";
import { MemoryRateLimiter } from "../src/routing/memory/rate-limiter.js";
import { MemoryTokenStore } from "../src/routing/memory/token-store.js";
import { MemoryVerifyCodeStore } from "../src/routing/memory/verify-code-store.js";
import { createStatusService } from "../src/status/service.js";
import { MysqlFriendStore } from "../src/storage/mysql/friend-store.js";
import type { Uid } from "../src/storage/ports.js";
import { ShardedApiKeyStore, ShardedStorageStats } from "../src/storage/sharded/api-key-store.js";
import { ShardedBlockStore } from "../src/storage/sharded/block-store.js";
import { ShardedConversationStore } from "../src/storage/sharded/conversation-store.js";
import { ShardedGroupStore } from "../src/storage/sharded/group-store.js";
import { ShardedMessageStore } from "../src/storage/sharded/message-store.js";
import { ShardedReportStore } from "../src/storage/sharded/report-store.js";
import { shardedUidPlacement } from "../src/storage/sharded/uid-placement.js";
import { createVerifyService } from "../src/verify/service.js";
import { type AdminGate, startAdminGate } from "./helpers/admin-gate.js";
import { type ChatCluster, type ClusterUser, startChatCluster } from "./helpers/chat-cluster.js";
import { testConfig } from "./helpers/env.js";
import { until } from "./helpers/waits.js";

// The Server API (issue 18) end to end: gate's app listening, over two chat nodes in this
// process on three MariaDB shards and Redis (test/helpers/chat-cluster.ts). Changes run on the
// chat nodes through ChatNodeService.Act, so pushes reach users online on either node.

const IMPORT_MAX = 4;
const log = createLogger("admin-api-test", "warn");

let cluster: ChatCluster;
let _app: FastifyInstance;
let gateUrl: string;
let apiKey: string;
let keyId: string;
let admin: AdminClient;
let gate: AdminGate;
const keys = () => new ShardedApiKeyStore(cluster.shards);

/** Every push a client got. */
interface Online {
  client: ChatClient;
  uid: Uid;
  messages: ChatMessage[];
  groupEvents: GroupEventPush[];
  kicks: number[];
}

async function online(user: ClusterUser): Promise<Online> {
  const seen: Online = {
    client: undefined as unknown as ChatClient,
    uid: user.uid,
    messages: [],
    groupEvents: [],
    kicks: [],
  };
  seen.client = await cluster.connect(user, {
    heartbeat: false,
    ackDelayMs: 0,
    listen: (client) => {
      client.on("message", (m) => seen.messages.push(m));
      client.on("groupEvent", (e) => seen.groupEvents.push(e));
      client.on("kicked", (k) => seen.kicks.push(k.reason));
    },
  });
  return seen;
}

/** A raw request to the listening gate: status and JSON body. */
async function http(
  method: string,
  path: string,
  options: { key?: string | null; body?: unknown } = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  const key = options.key === undefined ? apiKey : options.key;
  const res = await fetch(`${gateUrl}${path}`, {
    method,
    headers: {
      ...(key !== null ? { authorization: `Bearer ${key}` } : {}),
      ...(options.body !== undefined ? { "content-type": "application/json" } : {}),
    },
    ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
  });
  return { status: res.status, json: (await res.json().catch(() => ({}))) as Record<string, unknown> };
}

/** The error an AdminClient or GateClient call is refused with (code and details). */
async function refusal(promise: Promise<unknown>): Promise<{ code: ErrorCode | string; details?: unknown }> {
  try {
    await promise;
    return { code: "resolved" };
  } catch (err) {
    if (!(err instanceof AppError)) return { code: `not an AppError: ${String(err)}` };
    return { code: err.code, details: (err as AppError & { details?: unknown }).details };
  }
}

/** A user made through the API with a password, whom the ring puts on nodeId. */
async function userOn(nodeId: string, tag: string): Promise<{ uid: Uid; email: string; password: string }> {
  for (let i = 0; i < 40; i++) {
    const email = `${tag}${i}_${Date.now()}@example.test`;
    const password = "a-long-password";
    const { uid } = await admin.createUser({ name: `${tag}${i}_${Date.now() % 1e6}`, email, password });
    const owner = await cluster.status.api.getChatNode({ uid });
    if (owner.node?.nodeId === nodeId) return { uid: uid as Uid, email, password };
  }
  throw new Error(`no user landed on ${nodeId}`);
}

/** Logs in through gate and connects to the node gate names. */
async function loginAndConnect(user: { uid: Uid; email: string; password: string }): Promise<Online> {
  const login = await new GateClient(gateUrl).login(user.email, user.password);
  const node = [...cluster.nodes.values()].find((n) => n.info.nodeId === login.nodeId);
  if (!node) throw new Error(`gate named an unknown node ${login.nodeId}`);
  return online({ uid: user.uid, nodeId: login.nodeId, token: login.token });
}

beforeAll(async () => {
  let reports: ShardedReportStore | undefined;
  cluster = await startChatCluster({
    tag: "adm",
    nodeIds: ["n1", "n2"],
    usersPerNode: 8,
    // Invitations would ask each invitee: the Server API adds members directly all the same.
    // And a sender may never recall its own messages (a window of 0): the Server API recalls any.
    settings: {
      GROUP_JOIN_CONSENT: "invitation",
      MESSAGE_RECALL_WINDOW_SECONDS: 0,
      ADMIN_IMPORT_MAX: IMPORT_MAX,
      CHAT_REQUIRE_FRIENDSHIP: false,
    },
    stores: (sharded) => {
      reports = new ShardedReportStore(sharded);
      return {
        messages: new ShardedMessageStore(sharded),
        groups: new ShardedGroupStore(sharded),
        conversations: new ShardedConversationStore(sharded),
        friends: new MysqlFriendStore(shardedUidPlacement(sharded)),
        blocks: new ShardedBlockStore(sharded),
        reports,
        storageStats: new ShardedStorageStats(sharded),
      };
    },
  });
  gate = await startAdminGate(cluster, log, { workerId: 901, keyName: "tests", reports });
  _app = gate.app;
  gateUrl = gate.url;
  apiKey = gate.apiKey;
  keyId = apiKey.slice(3, 19);
  admin = new AdminClient(gateUrl, apiKey);
}, 300_000);

afterAll(async () => {
  await gate?.close();
  await cluster?.close();
});

describe("API keys", () => {
  it("a key the CLI made works; only the digest of its secret is stored", async () => {
    expect(apiKey).toMatch(/^sk_[A-Za-z0-9_-]{16}_[A-Za-z0-9_-]{43}$/);
    const rows: RowDataPacket[] = [];
    for (const instance of cluster.shards.map.instances) {
      const [found] = await cluster.shards.pool(instance.id).query<RowDataPacket[]>("SELECT * FROM api_keys");
      rows.push(...found);
    }
    const row = rows.find((r) => r.key_id === keyId);
    expect(row?.secret_digest).toBe(createHash("sha256").update(apiKey.slice(20)).digest("hex"));
    expect(JSON.stringify(rows)).not.toContain(apiKey.slice(20));
    expect((await http("GET", "/admin/v1/stats")).status).toBe(200);
    const listed = await runAdminCommand(keys(), ["api-key", "list"]);
    expect(listed.some((l) => l.startsWith(keyId) && l.endsWith("valid"))).toBe(true);
  });

  it("refuses a missing, malformed, unknown or revoked key with API_KEY_INVALID (401)", async () => {
    for (const key of [null, "nope", `sk_${"A".repeat(16)}_${"B".repeat(43)}`, `${apiKey.slice(0, -1)}x`]) {
      const res = await http("GET", "/admin/v1/stats", { key });
      expect(res.status).toBe(401);
      expect(res.json.error).toBe(ErrorCode.API_KEY_INVALID);
    }
    const lines = await runAdminCommand(keys(), ["api-key", "create", "--name", "short-lived"]);
    const doomed = lines.find((l) => l.startsWith("sk_")) ?? "";
    expect((await http("GET", "/admin/v1/stats", { key: doomed })).status).toBe(200);
    await runAdminCommand(keys(), ["api-key", "revoke", doomed.slice(3, 19)]);
    const res = await http("GET", "/admin/v1/stats", { key: doomed });
    expect([res.status, res.json.error]).toEqual([401, ErrorCode.API_KEY_INVALID]);
    const listed = await runAdminCommand(keys(), ["api-key", "list"]);
    expect(listed.find((l) => l.startsWith(doomed.slice(3, 19)))).toMatch(/revoked/);
  });
});

describe("users", () => {
  it("creates a user without an email code, reads it, refuses a taken name and unknown ids", async () => {
    const name = `adm_new_${Date.now() % 1e6}`;
    const { uid } = await admin.createUser({ name, email: `${name}@example.test`, password: "a-long-password" });
    expect(await admin.user(uid)).toMatchObject({ uid, name, email: `${name}@example.test` });
    expect((await refusal(admin.createUser({ name, email: `other_${name}@example.test` }))).code).toBe(
      ErrorCode.USER_EXISTS,
    );
    expect((await refusal(admin.user("123456789"))).code).toBe(ErrorCode.NOT_FOUND);
    await admin.rename(uid, `${name}_x`);
    expect((await admin.user(uid)).name).toBe(`${name}_x`);
    expect((await cluster.users.byName(`${name}_x`))?.uid).toBe(uid);
    expect(await cluster.users.byName(name)).toBeNull();
    const other = await admin.createUser({ name, email: `again_${name}@example.test` });
    expect((await refusal(admin.rename(other.uid, `${name}_x`))).code).toBe(ErrorCode.USER_EXISTS);
    expect((await refusal(admin.rename("123456789", "nobody_here"))).code).toBe(ErrorCode.NOT_FOUND);
    const bad = await http("POST", "/admin/v1/users", { body: { name: "x", email: "not an email" } });
    expect([bad.status, bad.json.error]).toEqual([400, ErrorCode.INVALID_ARGUMENT]);
  });

  it("imports users in bulk, each answering its uid or its code, at most ADMIN_IMPORT_MAX", async () => {
    const stamp = Date.now() % 1e6;
    const taken = `adm_imp_taken_${stamp}`;
    await admin.createUser({ name: taken, email: `${taken}@example.test` });
    const batch = [
      { name: `adm_imp_a_${stamp}`, email: `a_${stamp}@example.test`, password: "a-long-password" },
      { name: taken, email: `again_${stamp}@example.test` },
      { name: `adm_imp_b_${stamp}`, email: `b_${stamp}@example.test` },
    ];
    const answer = await admin.importUsers(batch);
    expect(answer.created).toBe(2);
    expect(answer.results.map((r) => r.error)).toEqual([ErrorCode.OK, ErrorCode.USER_EXISTS, ErrorCode.OK]);
    const created = answer.results[2]?.uid ?? "";
    expect((await admin.user(created)).name).toBe(`adm_imp_b_${stamp}`);
    const tooMany = Array.from({ length: IMPORT_MAX + 1 }, (_, i) => ({
      name: `adm_many_${i}_${stamp}`,
      email: `many_${i}_${stamp}@example.test`,
    }));
    expect((await refusal(admin.importUsers(tooMany))).code).toBe(ErrorCode.INVALID_ARGUMENT);
  });
});

describe("messages", () => {
  it("sends as a user to a user online on the other node: pushed at once, stored, in history and lists", async () => {
    const sender = await online(cluster.take("n1"));
    const recipient = await online(cluster.take("n2"));
    const sent = await admin.send({ from: sender.uid, toUid: recipient.uid, text: "from the server API" });
    const convId = convIdForPair(sender.uid, recipient.uid);
    expect(sent).toMatchObject({ convId, seq: 1, duplicate: false });
    await until("the recipient on n2 has it", () => recipient.messages.some((m) => m.text === "from the server API"));
    // The sender's own device is told too, as for a send from another of its devices.
    await until("the sender's session on n1 has it", () => sender.messages.some((m) => m.seq === 1));
    const again = await admin.send({
      from: sender.uid,
      toUid: recipient.uid,
      text: "x",
      clientMsgId: sent.clientMsgId,
    });
    expect(again).toMatchObject({ duplicate: true, seq: 1 });
    await admin.send({ from: sender.uid, toUid: recipient.uid, custom: { type: "poll", payloadJson: '{"q":1}' } });
    await admin.send({ from: sender.uid, toUid: recipient.uid, text: "third" });

    const { messages } = await admin.history(convId, { afterSeq: 1, limit: 2 });
    expect(messages.map((m) => m.seq)).toEqual([2, 3]);
    expect(messages[0]).toMatchObject({ kind: MessageKind.CUSTOM, custom: { type: "poll", payloadJson: '{"q":1}' } });
    // Without afterSeq: the newest page before beforeSeq (0: the newest), in seq order.
    expect((await admin.history(convId)).messages.map((m) => m.seq)).toEqual([1, 2, 3]);
    expect((await admin.history(convId, { beforeSeq: 3, limit: 1 })).messages.map((m) => m.seq)).toEqual([2]);
    const list = await admin.conversations(recipient.uid);
    expect(list.find((c) => c.convId === convId)).toMatchObject({ lastSeq: 3, lastMessage: { text: "third" } });

    expect((await refusal(admin.send({ from: sender.uid, toUid: "123456789", text: "?" }))).code).toBe(
      ErrorCode.PEER_NOT_FOUND,
    );
    expect((await refusal(admin.send({ from: "123456789", toUid: sender.uid, text: "?" }))).code).toBe(
      ErrorCode.NOT_FOUND,
    );
    expect((await refusal(admin.history("p:1:2"))).code).toBe(ErrorCode.NOT_PARTICIPANT);
  });

  it("recalls any message, whoever sent it, and both sides are told", async () => {
    const alice = await online(cluster.take("n1"));
    const bob = await online(cluster.take("n2"));
    const sent = await bob.client.sendText(alice.uid, "to be recalled");
    await until("alice has it", () => alice.messages.some((m) => m.seq === sent.seq));
    expect((await refusal(bob.client.recall(sent.convId, sent.seq))).code).toBe(ErrorCode.CHANGE_WINDOW_CLOSED);
    const answer = await admin.recall(sent.convId, sent.seq);
    expect(answer.recalled).toBe(true);
    for (const who of [alice, bob]) {
      await until("the recall reaches both", () =>
        who.messages.some((m) => m.kind === MessageKind.RECALL_EVENT && m.targetSeq === sent.seq),
      );
    }
    const { messages } = await admin.history(sent.convId, { afterSeq: 0 });
    expect(messages.find((m) => m.seq === sent.seq)).toMatchObject({ recalled: true, text: "" });
    expect((await refusal(admin.recall(sent.convId, 999))).code).toBe(ErrorCode.NOT_FOUND);
  });
});

describe("groups", () => {
  it("creates, adds (without invitations), sets a role, removes and dissolves, members told on both nodes", async () => {
    const owner = await online(cluster.take("n1"));
    const m1 = await online(cluster.take("n2"));
    const m2 = await online(cluster.take("n1"));
    const group = await admin.createGroup({ owner: owner.uid, name: "ops", members: [m1.uid] });
    expect(group).toMatchObject({ owner: owner.uid, name: "ops", memberCount: 2 });
    const { groupId } = group;
    await until("m1 on n2 is told it is in", () => m1.groupEvents.some((e) => e.kind === GroupEventKind.CREATED));

    expect(await admin.addMembers(groupId, [m2.uid])).toEqual([m2.uid]);
    await until("m1 hears m2 joined", () =>
      m1.groupEvents.some((e) => e.kind === GroupEventKind.MEMBERS_ADDED && e.uids.includes(m2.uid)),
    );
    await admin.setRole(groupId, m1.uid, "admin");
    await until("m1 hears its new role", () => m1.groupEvents.some((e) => e.kind === GroupEventKind.ROLE_CHANGED));
    await admin.send({ from: m2.uid, groupId, text: "hello group" });
    await until("m1 has the group message", () => m1.messages.some((m) => m.text === "hello group"));

    await admin.removeMember(groupId, m2.uid);
    await until("m2 hears it was removed", () => m2.groupEvents.some((e) => e.kind === GroupEventKind.MEMBER_KICKED));
    const history = await admin.history(groupConvId(groupId));
    expect(history.messages.map((m) => m.text)).toContain("hello group");

    await admin.dissolveGroup(groupId);
    await until("m1 hears the group is dissolved", () =>
      m1.groupEvents.some((e) => e.kind === GroupEventKind.DISSOLVED),
    );
    expect((await refusal(admin.addMembers("123456789", [m1.uid]))).code).toBe(ErrorCode.GROUP_NOT_FOUND);
    expect((await refusal(admin.createGroup({ owner: "123456789", name: "x" }))).code).toBe(ErrorCode.NOT_FOUND);
  });
});

describe("bans and logout", () => {
  it("a ban closes the user's sessions on every node, login answers ACCOUNT_BANNED with the reason; unban lets it in", async () => {
    const onN1 = await userOn("n1", "ban1_");
    const onN2 = await userOn("n2", "ban2_");
    const sessions = [await loginAndConnect(onN1), await loginAndConnect(onN2)];
    const until1 = Date.now() + 3_600_000;
    await admin.ban(onN1.uid, { until: new Date(until1).toISOString(), reason: "spam" });
    await admin.ban(onN2.uid, { reason: "abuse" });
    for (const s of sessions) {
      await until("the banned session closes", () => s.client.closed);
      expect(s.kicks).toContain(ErrorCode.ACCOUNT_BANNED);
    }
    const gate = new GateClient(gateUrl);
    const first = await refusal(gate.login(onN1.email, onN1.password));
    expect(first).toEqual({ code: ErrorCode.ACCOUNT_BANNED, details: { reason: "spam", untilMs: until1 } });
    const second = await refusal(gate.login(onN2.email, onN2.password));
    expect(second).toEqual({ code: ErrorCode.ACCOUNT_BANNED, details: { reason: "abuse", untilMs: 0 } });
    // A wrong password learns nothing of the ban.
    expect((await refusal(gate.login(onN1.email, "wrong-password"))).code).toBe(ErrorCode.BAD_CREDENTIALS);
    expect((await admin.user(onN2.uid)).banned).toEqual({ untilMs: 0, reason: "abuse" });

    expect(await admin.unban(onN2.uid)).toBe(true);
    const back = await loginAndConnect(onN2);
    expect(back.client.closed).toBe(false);
    expect((await admin.user(onN2.uid)).banned).toBeUndefined();
    expect((await refusal(admin.ban(onN1.uid, { until: Date.now() - 1000 }))).code).toBe(ErrorCode.INVALID_ARGUMENT);
  });

  it("logout closes the user's sessions and revokes its tokens; it may log in again", async () => {
    const user = await userOn("n2", "out_");
    const session = await loginAndConnect(user);
    expect(await admin.logout(user.uid)).toBeGreaterThanOrEqual(1);
    await until("the session closes", () => session.client.closed);
    const again = await loginAndConnect(user);
    expect(again.client.closed).toBe(false);
  });
});

describe("OpenAPI, reports and stats", () => {
  it("serves an OpenAPI 3 document listing every admin route and nothing else, and the docs UI", async () => {
    const res = await fetch(`${gateUrl}/admin/openapi.json`);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(doc.openapi).toMatch(/^3\./);
    const routes = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(routes.sort()).toEqual(
      [
        "POST /admin/v1/users",
        "POST /admin/v1/users/import",
        "GET /admin/v1/users/{uid}",
        "PATCH /admin/v1/users/{uid}",
        "POST /admin/v1/users/{uid}/ban",
        "POST /admin/v1/users/{uid}/unban",
        "POST /admin/v1/users/{uid}/logout",
        "GET /admin/v1/users/{uid}/conversations",
        "POST /admin/v1/messages",
        "POST /admin/v1/messages/recall",
        "POST /admin/v1/groups",
        "POST /admin/v1/groups/{groupId}/members",
        "DELETE /admin/v1/groups/{groupId}/members/{uid}",
        "PUT /admin/v1/groups/{groupId}/members/{uid}/role",
        "DELETE /admin/v1/groups/{groupId}",
        "GET /admin/v1/conversations/{convId}/messages",
        "GET /admin/v1/reports",
        "GET /admin/v1/stats",
      ].sort(),
    );
    const ui = await fetch(`${gateUrl}/admin/docs`);
    expect(ui.status).toBe(200);
    expect(await ui.text()).toMatch(/swagger/i);
  });

  it("lists the reports users filed", async () => {
    const reporter = await online(cluster.take("n1"));
    const reported = cluster.take("n2");
    const reportId = await reporter.client.report({ uid: reported.uid }, "spam links");
    const reports = await admin.reports({ limit: 10 });
    expect(reports.find((r) => r.reportId === reportId)).toMatchObject({
      reporter: reporter.uid,
      uid: reported.uid,
      reason: "spam links",
    });
  });

  it("counts sessions per node, messages per second and rows per shard", async () => {
    const a = await online(cluster.take("n1"));
    const b = await online(cluster.take("n2"));
    const before = await admin.stats();
    for (let i = 0; i < 3; i++) await admin.send({ from: a.uid, toUid: b.uid, text: `count ${i}` });
    const stats = await admin.stats();
    expect(stats.nodes.map((n) => n.nodeId).sort()).toEqual(["n1", "n2"]);
    for (const node of stats.nodes) {
      expect(node.sessions).toBe(cluster.nodes.get(node.nodeId)?.sessionCount());
    }
    expect(stats.sessions).toBe(stats.nodes.reduce((sum, n) => sum + n.sessions, 0));
    const total = (s: typeof stats) => s.nodes.reduce((sum, n) => sum + n.messagesIn, 0);
    expect(total(stats) - total(before)).toBe(3);
    expect(stats.messagesPerSecond).toBeGreaterThan(0);
    expect(stats.shards).toHaveLength(3);
    let users = 0;
    for (const instance of cluster.shards.map.instances) {
      const [rows] = await cluster.shards.pool(instance.id).query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM users");
      users += Number(rows[0]?.n);
    }
    expect(stats.shards.reduce((sum, s) => sum + s.users, 0)).toBe(users);
    expect(stats.shards.reduce((sum, s) => sum + s.messages, 0)).toBeGreaterThanOrEqual(3);
  });
});

describe("the embedded default (SQLite)", () => {
  let dir: string;
  let storage: StorageAdapters;
  let embedded: FastifyInstance;
  let config: Config;
  let deps: () => GateDeps;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "sc-admin-"));
    config = testConfig({ STORAGE_BACKEND: "sqlite", ROUTING_BACKEND: "memory", DATA_DIR: dir });
    storage = await createStorageAdapters(config, log);
    const tokens = new MemoryTokenStore();
    const status = createStatusService({ registry: new MemoryNodeRegistry(), tokens, config, log });
    const limiter = new MemoryRateLimiter();
    const stores = createAdminStores(storage, status, config, log);
    deps = () => ({
      users: storage.users,
      verify: createVerifyService({
        codes: new MemoryVerifyCodeStore(),
        limiter,
        mailer: new LogMailer(log),
        config,
        log,
      }),
      status,
      ids: new Snowflake({ workerId: 902 }),
      limiter: new MemoryRateLimiter(),
      config,
      log,
      admin: stores.stores,
    });
    embedded = await buildGateApp(deps());
  });

  afterAll(async () => {
    await embedded?.close();
    await storage?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function call(method: "GET" | "POST", url: string, key: string, payload?: object) {
    const res = await embedded.inject({ method, url, headers: { authorization: `Bearer ${key}` }, payload });
    return { status: res.statusCode, json: res.json() as Record<string, unknown> };
  }

  it("limits each key to ADMIN_REQUESTS_PER_MINUTE; ADMIN_API_ENABLED=false serves nothing under /admin", async () => {
    const [, key = ""] = await runAdminCommand(storage.apiKeys, ["api-key", "create", "--name", "limited"]);
    const limited = await buildGateApp({ ...deps(), config: { ...config, ADMIN_REQUESTS_PER_MINUTE: 2 } });
    const codes: number[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await limited.inject({
        method: "GET",
        url: "/admin/v1/stats",
        headers: { authorization: `Bearer ${key}` },
      });
      codes.push(res.json().error);
    }
    expect(codes).toEqual([ErrorCode.OK, ErrorCode.OK, ErrorCode.RATE_LIMITED]);
    await limited.close();

    const off = await buildGateApp({ ...deps(), config: { ...config, ADMIN_API_ENABLED: false } });
    for (const url of ["/admin/v1/stats", "/admin/openapi.json"]) {
      const res = await off.inject({ method: "GET", url, headers: { authorization: `Bearer ${key}` } });
      expect([res.statusCode, res.json().error]).toEqual([404, ErrorCode.NOT_FOUND]);
    }
    await off.close();
  });

  it("keys: made by the CLI's code path, digest stored, revoked refused; users created and banned", async () => {
    const [, key = ""] = await runAdminCommand(storage.apiKeys, ["api-key", "create", "--name", "embedded"]);
    const stored = await storage.apiKeys.byId(key.slice(3, 19));
    expect(stored?.secretDigest).toBe(createHash("sha256").update(key.slice(20)).digest("hex"));

    const created = await call("POST", "/admin/v1/users", key, {
      name: "emb_user",
      email: "emb@example.test",
      password: "a-long-password",
    });
    expect(created.status).toBe(200);
    const uid = String(created.json.uid);
    expect((await call("GET", `/admin/v1/users/${uid}`, key)).json.user).toMatchObject({ uid, name: "emb_user" });

    const login = { email: "emb@example.test", password: "a-long-password" };
    expect((await call("POST", `/admin/v1/users/${uid}/ban`, key, { reason: "test" })).status).toBe(200);
    const refused = await embedded.inject({ method: "POST", url: "/v1/login", payload: login });
    expect(refused.json()).toMatchObject({ error: ErrorCode.ACCOUNT_BANNED, details: { reason: "test", untilMs: 0 } });
    expect((await call("POST", `/admin/v1/users/${uid}/unban`, key)).json.unbanned).toBe(true);
    // No chat node runs here: a login past the ban check is answered NO_CHAT_NODE.
    const lifted = await embedded.inject({ method: "POST", url: "/v1/login", payload: login });
    expect(lifted.json().error).toBe(ErrorCode.NO_CHAT_NODE);

    await runAdminCommand(storage.apiKeys, ["api-key", "revoke", key.slice(3, 19)]);
    expect((await call("GET", `/admin/v1/users/${uid}`, key)).json.error).toBe(ErrorCode.API_KEY_INVALID);
  });
});
