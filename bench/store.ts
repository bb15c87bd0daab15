/**
 * The message store alone: what one durable append costs on this machine's MariaDB, without
 * chat nodes, sockets or a load generator around it. `npm run bench:store [-- --url mysql://...]`.
 *
 * Appends go through MysqlMessageStore (the stack's adapter, group commit on as configured by
 * default): one message at a time (each its own transaction: the floor under any send's
 * latency), then 20 conversations at once (batches). Prints and writes bench/results/store-*.md
 * with wall time per append, and the CPU mariadbd and this process spend per message.
 *
 * Then delivery acks through MysqlMessageStore.ack (its ack batcher, MYSQL_ACK_BATCH_MAX as
 * configured by default): a third of a 2,000-member group acking one post (what one of three
 * chat nodes flushes after it), and the recipients of 20 1:1 conversations at once.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import mysql from "mysql2/promise";
import { MessageKind } from "../packages/protocol/src/wire.js";
import { loadConfig } from "../src/config/load.js";
import { convIdForPair, type Uid, uidOf } from "../src/ids/identifiers.js";
import { MysqlMessageStore } from "../src/storage/mysql/message-store.js";
import { migrate } from "../src/storage/mysql/migrate.js";
import { createPool } from "../src/storage/mysql/pool.js";
import type { NewMessage } from "../src/storage/ports.js";
import { markdownTable } from "./load/report.js";
import { mariadbPid, mysqlAtOf, processCpuMs } from "./load/usage.js";

const { values } = parseArgs({
  options: {
    url: { type: "string", default: "mysql://root@127.0.0.1:3306/shardchat_store_bench" },
    messages: { type: "string", default: "3000" },
    out: { type: "string", default: "bench/results" },
    // Webhooks (issue 18): every append also writes its after-send outbox row, as with an endpoint configured.
    outbox: { type: "boolean", default: false },
  },
});
const url = values.url as string;
const total = Number(values.messages);
const at = mysqlAtOf(url);
await migrate(url);
const probe = await mysql.createConnection({ ...at, database: new URL(url).pathname.slice(1) });
const serverPid = await mariadbPid(probe, at.port);
const [versionRows] = await probe.query<mysql.RowDataPacket[]>(
  "SELECT VERSION() AS v, @@innodb_flush_log_at_trx_commit AS f",
);
await probe.end();
if (!serverPid) throw new Error(`no mariadbd process found for ${at.host}:${at.port} (it must run on this machine)`);
const pool = createPool({ MYSQL_URL: url, MYSQL_POOL_SIZE: 4 });
const defaults = loadConfig({});
const store = new MysqlMessageStore(pool, {
  batchMax: defaults.MYSQL_APPEND_BATCH_MAX,
  ackBatchMax: defaults.MYSQL_ACK_BATCH_MAX,
  batchConcurrency: defaults.MYSQL_APPEND_BATCHES_IN_FLIGHT,
  afterSendOutbox: values.outbox,
});

let n = 0;
const message = (conversation: number): NewMessage => {
  n++;
  const sender = uidOf(1000 + conversation);
  const recipient = uidOf(2000 + conversation);
  return {
    convId: convIdForPair(sender, recipient),
    msgId: uidOf(Date.now() * 1000 + n),
    sender,
    recipient,
    members: [sender, recipient],
    clientMsgId: `bench-${Date.now()}-${n}`,
    kind: MessageKind.TEXT,
    text: "x".repeat(64),
    sentAtMs: Date.now(),
  };
};

// Delivery acks need a later seq each round: the round moves last_seq first (one statement,
// counted in the figures), as the post or message that is acked would have.
const GROUP_MEMBERS = 2000;
const GROUP = "g:store-bench";
const groupMembers = Array.from({ length: GROUP_MEMBERS }, (_, i) => uidOf(3_000_000 + i));
await pool.query(
  "INSERT INTO conversations (conv_id, kind, last_seq, created_at) VALUES (?, 2, 0, 0) ON DUPLICATE KEY UPDATE last_seq = 0",
  [GROUP],
);
await pool.query("INSERT IGNORE INTO conversation_members (conv_id, uid, joined_at) VALUES ?", [
  groupMembers.map((uid) => [GROUP, uid, 0]),
]);
let groupSeq = 0;
async function groupAckRound(width: number): Promise<unknown> {
  await pool.query("UPDATE conversations SET last_seq = ? WHERE conv_id = ?", [++groupSeq, GROUP]);
  return Promise.all(groupMembers.slice(0, width).map((uid) => store.ack(uid, [{ convId: GROUP, seq: groupSeq }])));
}
async function directAckRound(width: number): Promise<unknown> {
  const convs = Array.from({ length: width }, (_, c) => message(c));
  await pool.query("UPDATE conversations SET last_seq = last_seq + 1 WHERE conv_id IN (?)", [
    convs.map((m) => m.convId),
  ]);
  const [rows] = await pool.query<mysql.RowDataPacket[]>(
    "SELECT conv_id, last_seq FROM conversations WHERE conv_id IN (?)",
    [convs.map((m) => m.convId)],
  );
  const seqOf = new Map(rows.map((r) => [r.conv_id as string, Number(r.last_seq)]));
  return Promise.all(
    convs.map((m) => store.ack(m.recipient as Uid, [{ convId: m.convId, seq: seqOf.get(m.convId) ?? 0 }])),
  );
}
// A paced case leaves this long between rounds: a node at the bench's lowest offered rate sees a
// message every few ms per MariaDB instance, so each one wakes sleeping processes on both ends.
const PACE_MS = 3;
const cases: { label: string; width: number; paced: boolean; round: (width: number) => Promise<unknown> }[] = [
  { label: "SELECT 1 (a bare round trip)", width: 1, paced: false, round: () => pool.query("SELECT 1") },
  { label: `SELECT 1, one every ${PACE_MS} ms`, width: 1, paced: true, round: () => pool.query("SELECT 1") },
  { label: "one at a time", width: 1, paced: false, round: appendRound },
  { label: `one at a time, one every ${PACE_MS} ms`, width: 1, paced: true, round: appendRound },
  { label: "20 conversations at once", width: 20, paced: false, round: appendRound },
  {
    label: `acks: a third of a ${GROUP_MEMBERS}-member group, one post`,
    width: 667,
    paced: false,
    round: groupAckRound,
  },
  { label: "acks: 20 1:1 conversations at once", width: 20, paced: false, round: directAckRound },
];

function appendRound(width: number): Promise<unknown> {
  return Promise.all(Array.from({ length: width }, (_, c) => store.append(message(c))));
}

const rows: (string | number)[][] = [];
for (const { label, width, paced, round } of cases) {
  const rounds = Math.max(1, Math.round((paced ? total / 3 : total) / width));
  for (let i = 0; i < Math.min(rounds, 50); i++) await round(width);
  const server0 = processCpuMs(serverPid) ?? 0;
  const self0 = process.cpuUsage();
  let pausedMs = 0;
  const started = performance.now();
  for (let r = 0; r < rounds; r++) {
    await round(width);
    if (paced) {
      const pause = performance.now();
      await new Promise((resolve) => setTimeout(resolve, PACE_MS));
      pausedMs += performance.now() - pause;
    }
  }
  const wallMs = performance.now() - started - pausedMs;
  const count = rounds * width;
  const self = process.cpuUsage(self0);
  const serverMs = (processCpuMs(serverPid) ?? 0) - server0;
  rows.push([
    label,
    count,
    Math.round((wallMs / rounds) * 1000) / 1000,
    paced ? "" : Math.round(count / (wallMs / 1000)),
    Math.round((serverMs / count) * 1000),
    Math.round((self.user + self.system) / count),
  ]);
}
await pool.query(`DROP DATABASE IF EXISTS \`${new URL(url).pathname.slice(1)}\``);
await pool.end();

const stamp = new Date().toISOString().replace(/[:.]/g, "-");
const report = [
  `# Message store alone, ${new Date().toISOString()}`,
  "",
  `Machine: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? "unknown"}), linux ${os.release()}, Node ${process.version}; ${versionRows[0]?.v} at ${at.host}:${at.port}, innodb_flush_log_at_trx_commit=${versionRows[0]?.f}; load average at the end ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(", ")}.`,
  "",
  `MysqlMessageStore.append (group commit as the stack runs it), 64-character texts${values.outbox ? ", each with its webhook after-send outbox row (--outbox)" : ""}. A round is one append, or 20 appends to 20 conversations at once (they share transactions), or a bare SELECT 1 (for scale); an ack round moves the cursors of that many users (one member each of the group, or the recipient of each 1:1 conversation) through the store's ack batcher (MYSQL_ACK_BATCH_MAX ${defaults.MYSQL_ACK_BATCH_MAX}). Paced rounds wait ${PACE_MS} ms after each (not counted in ms per round): both processes fall asleep between rounds, as they do at a low message rate, and the CPU of waking them is in the figures. CPU: mariadbd's and this process's (the chat node's share), per message (per round trip for SELECT 1), timers included.`,
  "",
  markdownTable(
    ["case", "messages or cursors", "ms per round", "per second", "mariadbd CPU µs each", "client CPU µs each"],
    rows,
  ),
  "",
].join("\n");
console.log(report);
mkdirSync(values.out as string, { recursive: true });
writeFileSync(join(values.out as string, `store-${stamp}${values.outbox ? "-outbox" : ""}.md`), report);
