import { spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ChatClient, GateClient, openChat } from "@shardchat/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChatMessage } from "../packages/protocol/src/wire.js";
import { convIdForPair, type Uid } from "../src/ids/identifiers.js";
import { codeFromLog, embeddedEnv, launchEmbedded } from "./helpers/embedded-server.js";
import { freePort } from "./helpers/ports.js";
import { ROOT, type ServiceProcess, waitFor } from "./helpers/processes.js";

/**
 * `npm start` with no settings: one process, SQLite in DATA_DIR, in-memory routing, codes in the
 * log. Nothing of MySQL or Redis is configured; the data must outlive a restart.
 */

let dataDir: string;
let env: Record<string, string>;
let gateUrl: string;
const running: ServiceProcess[] = [];
const clients: ChatClient[] = [];

/** The launcher on this test's ports and data (env), stopped after the file. */
async function startStack(name: string): Promise<ServiceProcess> {
  const proc = await launchEmbedded(name, env);
  running.push(proc);
  return proc;
}

function log(proc: ServiceProcess): string {
  return readFileSync(proc.logFile, "utf8");
}

async function register(proc: ServiceProcess, name: string): Promise<{ uid: Uid; password: string }> {
  const gate = new GateClient(gateUrl);
  const email = `${name}@example.test`;
  const password = `pw-${name}-secret`;
  await gate.requestVerifyCode(email);
  const code = await waitFor(`the code for ${email} in the log`, () => codeFromLog(log(proc), email));
  const { uid } = await gate.register({ user: name, email, password, code });
  return { uid, password };
}

async function chatAs(name: string, password: string, transport: "tcp" | "ws"): Promise<ChatClient> {
  const login = await new GateClient(gateUrl).login(name, password);
  const client = await openChat(login, transport, { autoAck: false });
  clients.push(client);
  return client;
}

async function stop(proc: ServiceProcess): Promise<number | null> {
  for (const client of clients.splice(0)) await client.close();
  await proc.stop("SIGTERM");
  return proc.child.exitCode;
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "sc-embedded-"));
  ({ env, gateUrl } = await embeddedEnv(dataDir));
});

afterAll(async () => {
  for (const client of clients) await client.close().catch(() => {});
  for (const proc of running) await proc.stop("SIGKILL");
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe("npm start with no settings", () => {
  it("registers and chats on SQLite and in-memory routing, and keeps the data over a restart", async () => {
    const first = await startStack("embedded-run-1");
    expect(log(first)).toContain(join(dataDir, "shardchat.sqlite"));
    expect(log(first)).toContain("npm run cli --");

    const alice = await register(first, "alice");
    const bob = await register(first, "bob");
    const convId = convIdForPair(alice.uid, bob.uid);

    const a = await chatAs("alice", alice.password, "tcp");
    const b = await chatAs("bob", bob.password, "ws");
    const arriving = once(b, "message").then(([m]) => m as ChatMessage);
    const sent = await a.sendText(bob.uid, "hello live");
    const live = await arriving;
    expect(live).toMatchObject({ convId, seq: 1, sender: alice.uid, text: "hello live", msgId: sent.msgId });
    await b.ack([live]);
    await b.close();

    await a.sendText(bob.uid, "while you were away 1");
    await a.sendText(bob.uid, "while you were away 2");
    expect(await stop(first)).toBe(0);

    const second = await startStack("embedded-run-2");
    // Logging in at all shows the accounts survived; tokens did not (they were in memory).
    const a2 = await chatAs("alice", alice.password, "tcp");
    const history = await a2.history({ convId, limit: 10 });
    expect(history.map((m) => [m.seq, m.sender, m.text])).toEqual([
      [1, alice.uid, "hello live"],
      [2, alice.uid, "while you were away 1"],
      [3, alice.uid, "while you were away 2"],
    ]);
    const b2 = await chatAs("bob", bob.password, "tcp");
    const unsynced = await b2.syncAll();
    expect(unsynced.map((m) => [m.seq, m.text])).toEqual([
      [2, "while you were away 1"],
      [3, "while you were away 2"],
    ]);
    // syncAll acked them: nothing is waiting any more.
    expect(await b2.syncAll()).toEqual([]);
    expect(await stop(second)).toBe(0);
  }, 180_000);

  it("runs STACK_CHAT_NODES nodes in the one process, delivering across them on the shared in-memory routing", async () => {
    const saved = { env, gateUrl };
    const gatePort = await freePort();
    gateUrl = `http://127.0.0.1:${gatePort}`;
    env = {
      ...env,
      DATA_DIR: join(dataDir, "two-nodes"),
      STACK_CHAT_NODES: "2",
      VERIFY_MAX_PER_ADDR_PER_HOUR: "1000",
      GATE_PORT: String(gatePort),
      // Node 2 takes each port plus one: 0 lets every listener pick a free port instead.
      CHAT_TCP_PORT: "0",
      CHAT_WS_PORT: "0",
      CHAT_GRPC_PORT: "0",
      STATUS_ADDR: `127.0.0.1:${await freePort()}`,
      VERIFY_ADDR: `127.0.0.1:${await freePort()}`,
    };
    try {
      const stack = await startStack("embedded-two-nodes");
      // Users land on nodes by the ring: register until each node holds one.
      const onNode = new Map<string, { name: string; uid: string; password: string }>();
      for (let i = 0; onNode.size < 2; i++) {
        if (i >= 30) throw new Error("30 users and still one node: is the second node in the ring?");
        const name = `node_user_${i}`;
        const user = await register(stack, name);
        const login = await new GateClient(gateUrl).login(name, user.password);
        if (!onNode.has(login.nodeId)) onNode.set(login.nodeId, { name, ...user });
      }
      const [from, to] = [...onNode.values()] as [
        { name: string; uid: string; password: string },
        { name: string; uid: string; password: string },
      ];
      const sender = await chatAs(from.name, from.password, "tcp");
      const receiver = await chatAs(to.name, to.password, "ws");
      const arriving = once(receiver, "message").then(([m]) => m as ChatMessage);
      await sender.sendText(to.uid, "across nodes");
      expect(await arriving).toMatchObject({ sender: from.uid, text: "across nodes" });
      expect(await stop(stack)).toBe(0);
    } finally {
      ({ env, gateUrl } = saved);
    }
  }, 180_000);

  it("--help lists every setting", () => {
    const run = spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "src/main.ts"), "--help"], {
      cwd: ROOT,
      encoding: "utf8",
      timeout: 30_000,
    });
    expect(run.status).toBe(0);
    for (const name of ["STORAGE_BACKEND", "ROUTING_BACKEND", "DATA_DIR", "GATE_PORT", "MYSQL_URL", "REDIS_URL"]) {
      expect(run.stdout).toContain(name);
    }
  });

  it("a bad setting stops it at once, naming the setting", () => {
    const run = spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "src/main.ts")], {
      cwd: ROOT,
      env: { ...process.env, GATE_PORT: "abc", DATA_DIR: dataDir },
      encoding: "utf8",
      timeout: 30_000,
    });
    expect(run.status).not.toBe(0);
    expect(run.status).not.toBeNull();
    expect(run.stderr).toContain("GATE_PORT");
  });
});
