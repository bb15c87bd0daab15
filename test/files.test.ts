import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { promisify } from "node:util";
import { type Auth, type ChatClient, type LoginAnswer, openChat } from "@shardchat/sdk";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ChatMessage, MessageKind } from "../packages/protocol/src/wire.js";
import { ErrorCode } from "../src/errors.js";
import { thumbnailKey } from "../src/files/image-preview.js";
import { LocalDiskFileStore } from "../src/files/local-disk.js";
import { FileLinks } from "../src/gate/file-links.js";
import { UploadSweeper } from "../src/gate/upload-sweeper.js";
import { convIdForPair } from "../src/ids/identifiers.js";
import { createLogger } from "../src/log/logger.js";
import { MysqlFileMetaStore } from "../src/storage/mysql/file-meta-store.js";
import { createPool } from "../src/storage/mysql/pool.js";
import { openSqlite, sqliteFileIn } from "../src/storage/sqlite/database.js";
import { SqliteFileMetaStore } from "../src/storage/sqlite/file-meta-store.js";
import { migrateSqlite } from "../src/storage/sqlite/migrate.js";
import { ROOT } from "./helpers/processes.js";
import { type Services, startServices } from "./helpers/services.js";
import { codeOf } from "./helpers/waits.js";

const execFileAsync = promisify(execFile);

/**
 * Files through gate, every service its own process: upload for a conversation, a file message
 * through the chat nodes (the reference only), download by the other participant, and every
 * refusal with its code.
 */
const MAX_FILE_BYTES = 64 * 1024;
/** Uploads per user per day (the others make fewer than this in this file). */
const UPLOADS_PER_DAY = 20;
/** Two and a half of the largest files: more than any one user of the other cases uploads. */
const UPLOAD_BYTES_PER_DAY = 2.5 * 64 * 1024;

/**
 * Bytes one user may keep stored: more than any user of the other cases can upload in a day
 * (UPLOAD_BYTES_PER_DAY), so only the quota's own case, which fills it through storage, meets it.
 */
const STORAGE_MAX_BYTES = 1024 * 1024;

/** The longest voice message these tests accept (MEDIA_MAX_DURATION_MS). */
const MAX_DURATION_MS = 60_000;

let s: Services;
const clients: ChatClient[] = [];
let a: LoginAnswer;
let b: LoginAnswer;
let c: LoginAnswer;
let q: LoginAnswer;
const auth = (l: LoginAnswer): Auth => ({ uid: l.uid, token: l.token });

/** The smallest valid PNG (1×1), followed by filler bytes so the size is what we ask. */
function png(size: number): Uint8Array<ArrayBuffer> {
  const head = Buffer.from(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000" +
      "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082",
    "hex",
  );
  const bytes = new Uint8Array(Math.max(size, head.length));
  bytes.set(head);
  for (let i = head.length; i < bytes.length; i++) bytes[i] = i % 251;
  return bytes;
}

beforeAll(async () => {
  s = await startServices("files", 2, {
    GATE_FILE_MAX_BYTES: MAX_FILE_BYTES,
    GATE_FILE_TYPES: "image/*,text/plain,audio/*",
    MEDIA_MAX_DURATION_MS: MAX_DURATION_MS,
    GATE_UPLOADS_PER_USER_PER_DAY: UPLOADS_PER_DAY,
    GATE_UPLOAD_BYTES_PER_USER_PER_DAY: UPLOAD_BYTES_PER_DAY,
    GATE_USER_STORAGE_MAX_BYTES: STORAGE_MAX_BYTES,
  });
  const users = await Promise.all(["filea", "fileb", "filec", "fileq"].map((n) => s.register(n)));
  const logins = await Promise.all(users.map((u) => s.gate.login(u.email, u.password)));
  [a, b, c, q] = logins as [LoginAnswer, LoginAnswer, LoginAnswer, LoginAnswer];
}, 200_000);

afterAll(async () => {
  await Promise.all(clients.map((cl) => cl.close().catch(() => {})));
  await s?.stop();
});

describe("files through gate", () => {
  let uploaded: Awaited<ReturnType<Services["gate"]["upload"]>>;
  const bytes = png(20_000);

  it("A uploads a file for the conversation with B and answers {id, url}", async () => {
    const convId = convIdForPair(a.uid, b.uid);
    uploaded = await s.gate.upload(auth(a), convId, new Blob([bytes], { type: "image/png" }), "../cat picture.png");
    expect(uploaded.id).toMatch(/^\d+$/);
    expect(uploaded.url).toBe(`/v1/files/${uploaded.id}`);
    expect(uploaded).toMatchObject({ name: "cat picture.png", size: bytes.length, contentType: "image/png" });
  });

  it("a file message carries only the reference through the chat nodes, and B downloads the bytes", async () => {
    const aChat = await openChat(a, "ws");
    const bChat = await openChat(b, "ws");
    clients.push(aChat, bChat);
    const arrived = once(bChat, "message").then(([m]) => m as ChatMessage);
    const ack = await aChat.sendFile(b.uid, uploaded, "look");
    const message = await arrived;
    expect(message).toMatchObject({ seq: ack.seq, kind: MessageKind.FILE, text: "look", sender: a.uid });
    expect(message.file).toEqual({
      id: uploaded.id,
      name: uploaded.name,
      size: String(uploaded.size),
      contentType: "image/png",
    });
    const [fromHistory] = await bChat.history({ convId: ack.convId, limit: 1 });
    expect(fromHistory?.file?.id).toBe(uploaded.id);

    const got = await s.gate.download(auth(b), message.file?.id ?? "");
    expect(got.contentType).toBe("image/png");
    expect(got.name).toBe("cat picture.png");
    expect(Buffer.from(got.bytes).equals(Buffer.from(bytes))).toBe(true);
  });

  it("a signed link serves that file without the token (for a browser's <img>), and nothing else", async () => {
    const link = await s.gate.fileLink(auth(b), uploaded.id);
    expect(link.url).not.toContain(b.token);
    expect(link.expiresAtMs).toBeGreaterThan(Date.now());
    const res = await fetch(link.url);
    expect(res.status).toBe(200);
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect((await res.arrayBuffer()).byteLength).toBe(bytes.length);
    // The signature is the file's and its expiry's: another file, a later expiry, a changed
    // signature are refused.
    const url = new URL(link.url);
    const refused = async (change: (u: URL) => void) => {
      const altered = new URL(url);
      change(altered);
      const r = await fetch(altered);
      return [r.status, ((await r.json()) as { error: number }).error];
    };
    expect(await refused((u) => u.searchParams.set("exp", String(link.expiresAtMs + 3_600_000)))).toEqual([
      401,
      ErrorCode.TOKEN_INVALID,
    ]);
    expect(await refused((u) => u.searchParams.set("sig", `x${url.searchParams.get("sig")?.slice(1)}`))).toEqual([
      401,
      ErrorCode.TOKEN_INVALID,
    ]);
    expect(await refused((u) => (u.pathname = "/v1/files/1234567890"))).toEqual([401, ErrorCode.TOKEN_INVALID]);
  });

  it("serves one byte range with 206, by headers or by signed link; past the end 416", async () => {
    const ranged = async (range: string | undefined, url = `${s.gateUrl}/v1/files/${uploaded.id}`, extra = {}) => {
      const res = await fetch(url, {
        headers: { authorization: `Bearer ${b.token}`, "x-uid": b.uid, ...(range ? { range } : {}), ...extra },
      });
      const body = Buffer.from(await res.arrayBuffer());
      return { res, body, header: (name: string) => res.headers.get(name) };
    };
    const whole = Buffer.from(bytes);
    const size = whole.length;
    const plain = await ranged(undefined);
    expect([plain.res.status, plain.header("accept-ranges"), plain.header("content-range")]).toEqual([
      200,
      "bytes",
      null,
    ]);
    for (const [range, start, end] of [
      ["bytes=0-9", 0, 9],
      ["bytes=-5", size - 5, size - 1],
      ["bytes=10-", 10, size - 1],
      // A suffix longer than the file is the whole file (RFC 9110 §14.1.2).
      [`bytes=-${size + 100}`, 0, size - 1],
    ] as const) {
      const got = await ranged(range);
      expect(got.res.status, range).toBe(206);
      expect(got.header("content-range"), range).toBe(`bytes ${start}-${end}/${size}`);
      expect(got.header("content-length"), range).toBe(String(end - start + 1));
      expect(got.header("accept-ranges"), range).toBe("bytes");
      // Every header of a whole download is kept on a part.
      for (const name of ["content-type", "content-disposition", "x-content-type-options", "cache-control"]) {
        expect(got.header(name), `${range} ${name}`).toBe(plain.header(name));
      }
      expect(got.body.equals(whole.subarray(start, end + 1)), range).toBe(true);
    }
    const past = await ranged(`bytes=${size}-`);
    expect([past.res.status, past.header("content-range"), past.header("accept-ranges")]).toEqual([
      416,
      `bytes */${size}`,
      "bytes",
    ]);
    // Several disjoint ranges, a malformed one, or an If-Range (gate sends no validator to
    // match): the whole file.
    for (const [range, extra] of [
      ["bytes=0-1,5-9", {}],
      ["bytes=nine-", {}],
      ["bytes=0-9", { "if-range": '"some-etag"' }],
    ] as const) {
      const got = await ranged(range, undefined, extra);
      expect([got.res.status, got.body.length], range).toEqual([200, size]);
    }
    // The same through a signed link, which carries no token.
    const link = await s.gate.fileLink(auth(b), uploaded.id);
    const res = await fetch(link.url, { headers: { range: "bytes=100-199" } });
    expect([res.status, res.headers.get("content-range")]).toEqual([206, `bytes 100-199/${size}`]);
    expect(Buffer.from(await res.arrayBuffer()).equals(whole.subarray(100, 200))).toBe(true);
  });

  it("a download broken off part way resumes from its byte offset and reassembles the file", async () => {
    const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");
    const headers = { authorization: `Bearer ${b.token}`, "x-uid": b.uid };
    const url = `${s.gateUrl}/v1/files/${uploaded.id}`;
    const offset = 7_777;
    // The first attempt reads the whole download up to the offset, then drops the connection.
    const first = await fetch(url, { headers });
    const reader = (first.body as ReadableStream<Uint8Array>).getReader();
    const received: Buffer[] = [];
    let got = 0;
    while (got < offset) {
      const chunk = await reader.read();
      if (chunk.done) break;
      received.push(Buffer.from(chunk.value));
      got += chunk.value.length;
    }
    await reader.cancel();
    const head = Buffer.concat(received).subarray(0, offset);
    expect(head.length).toBe(offset);
    const rest = await fetch(url, { headers: { ...headers, range: `bytes=${offset}-` } });
    expect(rest.status).toBe(206);
    const resumed = Buffer.concat([head, Buffer.from(await rest.arrayBuffer())]);
    expect(sha256(resumed)).toBe(sha256(Buffer.from(bytes)));
  });

  it("a direct upload, where files are on gate's disk, answers DIRECT_UPLOAD_UNAVAILABLE", async () => {
    const res = await fetch(`${s.gateUrl}/v1/files/uploads`, {
      method: "POST",
      headers: { authorization: `Bearer ${a.token}`, "x-uid": a.uid, "content-type": "application/json" },
      body: JSON.stringify({ convId: convIdForPair(a.uid, b.uid), name: "x.png", size: 10, contentType: "image/png" }),
    });
    expect([res.status, ((await res.json()) as { error: number }).error]).toEqual([
      400,
      ErrorCode.DIRECT_UPLOAD_UNAVAILABLE,
    ]);
  });

  it("refuses the login token in a URL, where access logs would keep it", async () => {
    const res = await fetch(`${s.gateUrl}/v1/files/${uploaded.id}?uid=${b.uid}&token=${encodeURIComponent(b.token)}`);
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: ErrorCode.TOKEN_INVALID });
  });

  it("refuses C, who is not in the conversation, both download and upload", async () => {
    expect(await codeOf(s.gate.download(auth(c), uploaded.id))).toBe(ErrorCode.NOT_PARTICIPANT);
    expect(await codeOf(s.gate.fileLink(auth(c), uploaded.id))).toBe(ErrorCode.NOT_PARTICIPANT);
    const upload = s.gate.upload(auth(c), convIdForPair(a.uid, b.uid), new Blob(["x"], { type: "text/plain" }), "x");
    expect(await codeOf(upload)).toBe(ErrorCode.NOT_PARTICIPANT);
  });

  it("refuses a missing or wrong token", async () => {
    const res = await fetch(`${s.gateUrl}/v1/files/${uploaded.id}`);
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: ErrorCode.TOKEN_INVALID });
    expect(await codeOf(s.gate.download({ uid: b.uid, token: "forged-token-forged-token" }, uploaded.id))).toBe(
      ErrorCode.TOKEN_INVALID,
    );
  });

  it("refuses an oversize file with FILE_TOO_LARGE and keeps none of its bytes", async () => {
    const before = countFiles(s.fileDir);
    const big = new Blob([png(MAX_FILE_BYTES + 1)], { type: "image/png" });
    expect(await codeOf(s.gate.upload(auth(a), convIdForPair(a.uid, b.uid), big, "big.png"))).toBe(
      ErrorCode.FILE_TOO_LARGE,
    );
    expect(countFiles(s.fileDir)).toBe(before);
    // Exactly the limit is fine.
    const limit = new Blob([png(MAX_FILE_BYTES)], { type: "image/png" });
    const ok = await s.gate.upload(auth(a), convIdForPair(a.uid, b.uid), limit, "limit.png");
    expect(ok.size).toBe(MAX_FILE_BYTES);
  });

  it("refuses a content type outside the allow-list with FILE_TYPE_NOT_ALLOWED", async () => {
    const html = new Blob(["<script>alert(1)</script>"], { type: "text/html" });
    expect(await codeOf(s.gate.upload(auth(a), convIdForPair(a.uid, b.uid), html, "x.html"))).toBe(
      ErrorCode.FILE_TYPE_NOT_ALLOWED,
    );
  });

  it("answers NOT_FOUND for an unknown id and FILE_MISSING for a body without a file", async () => {
    expect(await codeOf(s.gate.download(auth(a), "12345"))).toBe(ErrorCode.NOT_FOUND);
    expect(await codeOf(s.gate.download(auth(a), "not-an-id"))).toBe(ErrorCode.NOT_FOUND);
    const form = new FormData();
    form.append("note", "no file here");
    const res = await fetch(`${s.gateUrl}/v1/files?convId=${convIdForPair(a.uid, b.uid)}`, {
      method: "POST",
      headers: { authorization: `Bearer ${a.token}`, "x-uid": a.uid },
      body: form,
    });
    expect(await res.json()).toMatchObject({ error: ErrorCode.FILE_MISSING });
  });

  it("the chat node refuses a file message without a file reference", async () => {
    const aChat = clients[0] as ChatClient;
    const bad = aChat.request(
      "sendReq",
      { toUid: b.uid, clientMsgId: "no-file", kind: MessageKind.FILE, text: "" },
      "sendResp",
    );
    expect(await codeOf(bad)).toBe(ErrorCode.INVALID_ARGUMENT);
  });

  it("the chat node checks the file a message names: its own upload, for this conversation, as stored", async () => {
    const [aChat, bChat] = clients as [ChatClient, ChatClient];
    // B cannot pass off A's upload as its own.
    expect(await codeOf(bChat.sendFile(a.uid, uploaded))).toBe(ErrorCode.NOT_PARTICIPANT);
    // Nor can A send it into another conversation.
    expect(await codeOf(aChat.sendFile(c.uid, uploaded))).toBe(ErrorCode.NOT_PARTICIPANT);
    expect(await codeOf(aChat.sendFile(b.uid, { ...uploaded, id: "424242" }))).toBe(ErrorCode.NOT_FOUND);
    // What the client claims about the file is replaced by what gate stored.
    const arrived = once(bChat, "message").then(([m]) => m as ChatMessage);
    await aChat.sendFile(b.uid, { ...uploaded, name: "lies.exe", size: 1, contentType: "application/x-lie" });
    expect((await arrived).file).toEqual({
      id: uploaded.id,
      name: "cat picture.png",
      size: String(uploaded.size),
      contentType: "image/png",
    });
  });

  it("a group file: uploaded for g:<id>, sent to the group, downloaded by members; not after leaving", async () => {
    const [aChat, bChat] = clients as [ChatClient, ChatClient];
    const cChat = await openChat(c, "tcp");
    clients.push(cChat);
    const group = await aChat.createGroup("files", [b.uid, c.uid]);
    // Joining takes consent (GROUP_JOIN_CONSENT's default): both accept.
    expect(group.invited.sort()).toEqual([b.uid, c.uid].sort());
    await bChat.answerGroupInvitation(group.groupId, true);
    await cChat.answerGroupInvitation(group.groupId, true);
    const nextIn = (chat: ChatClient) =>
      new Promise<ChatMessage>((resolve) => {
        const onMessage = (m: ChatMessage) => {
          if (m.convId !== group.convId) return;
          chat.off("message", onMessage);
          resolve(m);
        };
        chat.on("message", onMessage);
      });

    const bytes = png(3000);
    const file = await s.gate.upload(auth(a), group.convId, new Blob([bytes], { type: "image/png" }), "team.png");
    const [toB, toC] = [nextIn(bChat), nextIn(cChat)];
    const ack = await aChat.sendGroupFile(group.groupId, file, "for everyone", "group-file-1");
    const stored = { id: file.id, name: "team.png", size: String(bytes.length), contentType: "image/png" };
    for (const m of await Promise.all([toB, toC])) {
      expect(m).toMatchObject({ msgId: ack.msgId, kind: MessageKind.FILE, text: "for everyone", file: stored });
    }
    expect((await bChat.history({ convId: group.convId, limit: 1 }))[0]?.file).toEqual(stored);
    expect(Buffer.from((await s.gate.download(auth(c), file.id)).bytes).equals(Buffer.from(bytes))).toBe(true);
    // A resend is the stored message, file and all.
    expect(await aChat.sendGroupFile(group.groupId, file, "for everyone", "group-file-1")).toMatchObject({
      msgId: ack.msgId,
      duplicate: true,
    });

    // Only the uploader's file for this group: not B's, not one uploaded for a 1:1 conversation.
    expect(await codeOf(bChat.sendGroupFile(group.groupId, file))).toBe(ErrorCode.NOT_PARTICIPANT);
    expect(await codeOf(aChat.sendGroupFile(group.groupId, uploaded))).toBe(ErrorCode.NOT_PARTICIPANT);

    await cChat.leaveGroup(group.groupId);
    expect(await codeOf(s.gate.download(auth(c), file.id))).toBe(ErrorCode.NOT_PARTICIPANT);
    const late = s.gate.upload(auth(c), group.convId, new Blob([bytes], { type: "image/png" }), "late.png");
    expect(await codeOf(late)).toBe(ErrorCode.NOT_PARTICIPANT);
  });

  it("a forwarded file: the target conversation's participant downloads the same bytes, nobody else gains access", async () => {
    const [aChat, bChat] = clients as [ChatClient, ChatClient];
    const qChat = await openChat(q, "ws");
    clients.push(qChat);
    const bytes = png(4000);
    const file = await s.gate.upload(
      auth(a),
      convIdForPair(a.uid, b.uid),
      new Blob([bytes], { type: "image/png" }),
      "fwd.png",
    );
    const sent = await aChat.sendFile(b.uid, file, "pass it on");
    // Q is in neither conversation yet: the file is not Q's to fetch.
    expect(await codeOf(s.gate.download(auth(q), file.id))).toBe(ErrorCode.NOT_PARTICIPANT);
    const arrived = once(qChat, "message").then(([m]) => m as ChatMessage);
    await bChat.forward({ convId: sent.convId, seq: sent.seq }, { toUid: q.uid });
    const copy = await arrived;
    expect(copy).toMatchObject({ kind: MessageKind.FILE, text: "pass it on", sender: b.uid, file: { id: file.id } });
    expect(copy.forwarded).toMatchObject({ convId: sent.convId, msgId: sent.msgId, sender: a.uid });
    expect(Buffer.from((await s.gate.download(auth(q), file.id)).bytes).equals(Buffer.from(bytes))).toBe(true);
    // C is still in none of the conversations the file was uploaded or forwarded into.
    expect(await codeOf(s.gate.download(auth(c), file.id))).toBe(ErrorCode.NOT_PARTICIPANT);
  });

  it("counts each user's uploads a day: past GATE_UPLOADS_PER_USER_PER_DAY, RATE_LIMITED", async () => {
    const convId = convIdForPair(q.uid, a.uid);
    for (let i = 0; i < UPLOADS_PER_DAY; i++) {
      await s.gate.upload(auth(q), convId, new Blob([`n${i}`], { type: "text/plain" }), `n${i}.txt`);
    }
    const over = s.gate.upload(auth(q), convId, new Blob(["one more"], { type: "text/plain" }), "over.txt");
    expect(await codeOf(over)).toBe(ErrorCode.RATE_LIMITED);
    // Another user's budget is its own.
    expect((await s.gate.upload(auth(a), convId, new Blob(["a's"], { type: "text/plain" }), "a.txt")).id).toMatch(
      /^\d+$/,
    );
  });

  it("counts each user's uploaded bytes a day: an upload past GATE_UPLOAD_BYTES_PER_USER_PER_DAY is refused and spends nothing", async () => {
    const registered = await s.register("filez");
    const z = await s.gate.login(registered.email, registered.password);
    const convId = convIdForPair(z.uid, a.uid);
    const full = () => new Blob([png(MAX_FILE_BYTES)], { type: "image/png" });
    await s.gate.upload(auth(z), convId, full(), "1.png");
    await s.gate.upload(auth(z), convId, full(), "2.png");
    expect(await codeOf(s.gate.upload(auth(z), convId, full(), "3.png"))).toBe(ErrorCode.RATE_LIMITED);
    // Half a file still fits: the refused one spent nothing. Then the budget is used up.
    await s.gate.upload(auth(z), convId, new Blob([png(MAX_FILE_BYTES / 2)], { type: "image/png" }), "half.png");
    expect(await codeOf(s.gate.upload(auth(z), convId, new Blob(["x"], { type: "text/plain" }), "x.txt"))).toBe(
      ErrorCode.RATE_LIMITED,
    );
  });

  it("refuses an upload past GATE_USER_STORAGE_MAX_BYTES with STORAGE_QUOTA_EXCEEDED and keeps none of its bytes", async () => {
    const registered = await s.register("filequota");
    const u = await s.gate.login(registered.email, registered.password);
    const convId = convIdForPair(u.uid, a.uid);
    const pool = createPool(s.config);
    try {
      const files = new MysqlFileMetaStore(pool);
      // What u stores already, as gate's storage counts it: all but 1000 bytes of its quota.
      await files.create({
        id: "7100000000000000001",
        owner: u.uid,
        convId,
        name: "earlier.bin",
        size: STORAGE_MAX_BYTES - 1000,
        contentType: "text/plain",
        createdAt: Date.now(),
      });
      const before = countFiles(s.fileDir);
      // Passes the check before the body (room for a byte), refused once its size is known.
      const over = new Blob([png(1001)], { type: "image/png" });
      expect(await codeOf(s.gate.upload(auth(u), convId, over, "over.png"))).toBe(ErrorCode.STORAGE_QUOTA_EXCEEDED);
      expect(countFiles(s.fileDir)).toBe(before);
      const fits = await s.gate.upload(auth(u), convId, new Blob([png(1000)], { type: "image/png" }), "fits.png");
      expect(fits.size).toBe(1000);
      // Full: refused before the body is read, with the quota's HTTP status.
      const res = await fetch(`${s.gateUrl}/v1/files?convId=${convId}`, {
        method: "POST",
        headers: { authorization: `Bearer ${u.token}`, "x-uid": u.uid },
        body: (() => {
          const form = new FormData();
          form.append("file", new Blob(["x"], { type: "text/plain" }), "x.txt");
          return form;
        })(),
      });
      expect([res.status, ((await res.json()) as { error: number }).error]).toEqual([
        413,
        ErrorCode.STORAGE_QUOTA_EXCEEDED,
      ]);
      expect(countFiles(s.fileDir)).toBe(before + 1);
      // Another user's quota is its own.
      expect((await s.gate.upload(auth(a), convId, new Blob(["a"], { type: "text/plain" }), "a.txt")).size).toBe(1);
    } finally {
      await pool.end();
    }
  });

  it("a recalled file message releases its file: gate's sweep deletes its row, bytes and thumbnail", async () => {
    const [aChat, bChat] = clients as [ChatClient, ChatClient];
    const photo = await sharp({ create: { width: 40, height: 30, channels: 3, background: "#00ff00" } })
      .png()
      .toBuffer();
    const convId = convIdForPair(a.uid, b.uid);
    const file = await s.gate.upload(
      auth(a),
      convId,
      new Blob([new Uint8Array(photo)], { type: "image/png" }),
      "r.png",
    );
    expect(file.media?.thumbnail).toBeDefined();
    const arrived = once(bChat, "message").then(([m]) => m as ChatMessage);
    const sent = await aChat.sendFile(b.uid, file, "oops");
    await arrived;
    const disk = new LocalDiskFileStore(s.fileDir);
    const pool = createPool(s.config);
    try {
      const sweeper = new UploadSweeper(
        new MysqlFileMetaStore(pool),
        disk,
        s.config.GATE_UNSENT_UPLOAD_TTL_MS,
        createLogger("sweep-test", "silent"),
      );
      // Named by a message: a sweep keeps it.
      await sweeper.sweep();
      expect(Buffer.from((await s.gate.download(auth(b), file.id)).bytes).equals(photo)).toBe(true);

      await aChat.recall(sent.convId, sent.seq);
      expect(await codeOf(s.gate.download(auth(b), file.id))).toBe(ErrorCode.NOT_FOUND);
      expect(await codeOf(aChat.sendFile(b.uid, file, "again"))).toBe(ErrorCode.NOT_FOUND);
      expect(await disk.head(file.id)).not.toBeNull();
      expect(await disk.head(thumbnailKey(file.id))).not.toBeNull();
      expect(await sweeper.sweep()).toBeGreaterThanOrEqual(1);
      expect(await disk.head(file.id)).toBeNull();
      expect(await disk.head(thumbnailKey(file.id))).toBeNull();
      expect(await codeOf(s.gate.download(auth(b), file.id))).toBe(ErrorCode.NOT_FOUND);
      // The file first sent in this conversation (named by two messages) is untouched.
      expect((await s.gate.download(auth(b), uploaded.id)).bytes.byteLength).toBe(bytes.length);
    } finally {
      await pool.end();
    }
  });

  it("GET /v1/node names the caller's chat node for a valid token only", async () => {
    expect((await s.gate.node(auth(b))).nodeId).toMatch(/^chat-[12]$/);
    expect(await codeOf(s.gate.node({ uid: b.uid, token: "forged-token-forged-token" }))).toBe(ErrorCode.TOKEN_INVALID);
  });

  // Last: the terminal client logs in as each user, which replaces their tokens.
  it("the terminal client sends a file and downloads it (sendfile, download)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sc-cli-files-"));
    try {
      const source = join(dir, "note.txt");
      writeFileSync(source, "a note from the terminal\n");
      const cli = (...args: string[]) =>
        execFileAsync(
          process.execPath,
          ["--conditions=shardchat-source", "--import", "tsx", "src/cli/main.ts", "--gate", s.gateUrl, ...args],
          { cwd: ROOT },
        );
      const sent = await cli("sendfile", "fileb", "pw-fileb-secret", a.uid, source, "from", "the", "cli");
      const id = /uploaded (\d+)/.exec(sent.stdout)?.[1];
      expect(id, sent.stdout).toBeDefined();
      const target = join(dir, "got.txt");
      const got = await cli("download", "filea", "pw-filea-secret", id as string, target);
      expect(got.stdout).toContain("text/plain");
      expect(readFileSync(target, "utf8")).toBe("a note from the terminal\n");
      // filec is in neither conversation.
      const refused = await cli("download", "filec", "pw-filec-secret", id as string, target).catch((e) => e);
      expect(String(refused.stderr)).toContain(`error ${ErrorCode.NOT_PARTICIPANT}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function countFiles(dir: string): number {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length;
}

describe("media: image previews and voice messages (issue 19)", () => {
  let m: LoginAnswer;
  let n: LoginAnswer;
  let outsider: LoginAnswer;
  let convId: string;
  let image: Awaited<ReturnType<Services["gate"]["upload"]>>;

  beforeAll(async () => {
    const users = await Promise.all(["mediam", "median", "mediao"].map((name) => s.register(name)));
    [m, n, outsider] = (await Promise.all(users.map((u) => s.gate.login(u.email, u.password)))) as [
      LoginAnswer,
      LoginAnswer,
      LoginAnswer,
    ];
    convId = convIdForPair(m.uid, n.uid);
  });

  it("an uploaded image gets its dimensions and a thumbnail, which the file message carries", async () => {
    // Left half red, right half blue: the thumbnail must keep both where they were.
    const photo = await sharp({ create: { width: 400, height: 200, channels: 3, background: "#0000ff" } })
      .composite([
        { input: { create: { width: 200, height: 200, channels: 3, background: "#ff0000" } }, left: 0, top: 0 },
      ])
      .png()
      .toBuffer();
    image = await s.gate.upload(auth(m), convId, new Blob([new Uint8Array(photo)], { type: "image/png" }), "wide.png");
    const media = {
      width: 400,
      height: 200,
      durationMs: 0,
      thumbnail: { width: 320, height: 160, size: expect.stringMatching(/^\d+$/), contentType: "image/webp" },
    };
    expect(image.media).toEqual(media);
    const mChat = await openChat(m, "tcp");
    const nChat = await openChat(n, "ws");
    clients.push(mChat, nChat);
    const arrived = once(nChat, "message").then(([msg]) => msg as ChatMessage);
    await mChat.sendFile(n.uid, image, "a preview");
    expect((await arrived).file?.media).toEqual(media);

    // N shows the preview without fetching the original: by headers, and by a signed link.
    const headers = { authorization: `Bearer ${n.token}`, "x-uid": n.uid };
    const thumb = await fetch(`${s.gateUrl}/v1/files/${image.id}/thumbnail`, { headers });
    expect(thumb.status).toBe(200);
    expect(thumb.headers.get("content-type")).toBe("image/webp");
    const bytes = Buffer.from(await thumb.arrayBuffer());
    expect(String(bytes.length)).toBe(image.media?.thumbnail?.size);
    const decoded = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
    expect([decoded.info.width, decoded.info.height, decoded.info.format]).toEqual([320, 160, "raw"]);
    const pixel = (x: number) => [...decoded.data.subarray((80 * 320 + x) * decoded.info.channels).subarray(0, 3)];
    expect(pixel(40)[0]).toBeGreaterThan(200);
    expect(pixel(280)[2]).toBeGreaterThan(200);
    const link = await s.gate.fileLink(auth(n), image.id, "thumbnail");
    expect(new URL(link.url).pathname).toBe(`/v1/files/${image.id}/thumbnail`);
    const byLink = await fetch(link.url);
    expect(byLink.status).toBe(200);
    expect(Buffer.from(await byLink.arrayBuffer()).equals(bytes)).toBe(true);
    // A thumbnail's link opens no original, and an original's link no thumbnail.
    const original = new URL(link.url);
    original.pathname = `/v1/files/${image.id}`;
    expect((await fetch(original)).status).toBe(401);
    const fileLink = new URL((await s.gate.fileLink(auth(n), image.id)).url);
    fileLink.pathname = `/v1/files/${image.id}/thumbnail`;
    expect((await fetch(fileLink)).status).toBe(401);
  });

  it("a thumbnail is refused to a non-participant, and a file without one answers NOT_FOUND", async () => {
    const asOutsider = { authorization: `Bearer ${outsider.token}`, "x-uid": outsider.uid };
    const refused = await fetch(`${s.gateUrl}/v1/files/${image.id}/thumbnail`, { headers: asOutsider });
    expect((await refused.json()).error).toBe(ErrorCode.NOT_PARTICIPANT);
    expect(await codeOf(s.gate.fileLink(auth(outsider), image.id, "thumbnail"))).toBe(ErrorCode.NOT_PARTICIPANT);
    const text = await s.gate.upload(auth(m), convId, new Blob(["plain words"], { type: "text/plain" }), "a.txt");
    expect(text.media).toBeUndefined();
    expect(await codeOf(s.gate.fileLink(auth(n), text.id, "thumbnail"))).toBe(ErrorCode.NOT_FOUND);
    // Not an image after all: no preview, and the upload still stands.
    const broken = await s.gate.upload(
      auth(m),
      convId,
      new Blob([png(2_000).subarray(0, 40)], { type: "image/png" }),
      "x.png",
    );
    expect(broken.media).toBeUndefined();
  });

  it("a voice message: an audio upload with its length, sent as AUDIO, played from the reference", async () => {
    const recording = new Blob([new Uint8Array(4_096).fill(7)], { type: "audio/webm" });
    const voice = await s.gate.upload(auth(m), convId, recording, "voice.webm", { durationMs: 4_200 });
    expect(voice.media).toEqual({ width: 0, height: 0, durationMs: 4_200 });
    const [mChat, nChat] = clients.slice(-2) as [ChatClient, ChatClient];
    const arrived = once(nChat, "message").then(([msg]) => msg as ChatMessage);
    const ack = await mChat.sendVoice(n.uid, voice);
    const message = await arrived;
    expect(message).toMatchObject({
      seq: ack.seq,
      kind: MessageKind.AUDIO,
      file: { id: voice.id, media: { durationMs: 4_200 } },
    });
    // Only a recording is a voice message; a length is only a recording's, and a bounded one.
    expect(await codeOf(mChat.sendVoice(n.uid, image))).toBe(ErrorCode.INVALID_ARGUMENT);
    const png1 = new Blob([png(500)], { type: "image/png" });
    expect(await codeOf(s.gate.upload(auth(m), convId, png1, "p.png", { durationMs: 10 }))).toBe(
      ErrorCode.INVALID_ARGUMENT,
    );
    expect(
      await codeOf(s.gate.upload(auth(m), convId, recording, "long.webm", { durationMs: MAX_DURATION_MS + 1 })),
    ).toBe(ErrorCode.INVALID_ARGUMENT);
  });
});

describe("FileLinks (the signing of file links)", () => {
  it("opens its file until its expiry, then answers expired; another key's link is invalid", () => {
    let now = 1_000_000;
    const links = new FileLinks(Buffer.from("key one"), 60_000, () => now);
    const { path, expiresAtMs } = links.sign("42");
    const query = new URL(path, "http://gate").searchParams;
    expect(expiresAtMs).toBe(1_060_000);
    expect(links.check("42", query.get("exp"), query.get("sig"))).toBe("ok");
    expect(links.check("43", query.get("exp"), query.get("sig"))).toBe("invalid");
    now = 1_060_001;
    expect(links.check("42", query.get("exp"), query.get("sig"))).toBe("expired");
    const other = new FileLinks(Buffer.from("key two"), 60_000, () => 0);
    expect(other.check("42", query.get("exp"), query.get("sig"))).toBe("invalid");
    expect(links.check("42", undefined, "x")).toBe("invalid");
  });
});

describe("UploadSweeper (uploads no message named)", () => {
  it("deletes the metadata and the bytes of unsent uploads past the TTL, and keeps sent ones", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sc-sweep-"));
    const db = openSqlite(sqliteFileIn(dir));
    try {
      migrateSqlite(db);
      const meta = new SqliteFileMetaStore(db);
      const bytes = new LocalDiskFileStore(join(dir, "files"));
      const upload = async (id: string) => {
        await bytes.put(id, Readable.from([Buffer.from(`bytes of ${id}`)]));
        await meta.create({
          id,
          owner: "5",
          convId: "p:5:6",
          name: "f",
          size: 10,
          contentType: "text/plain",
          createdAt: 1000,
        });
      };
      await upload("101");
      await upload("102");
      await meta.markSent("102", 1500);
      let now = 1000 + 60_000 - 1;
      const sweeper = new UploadSweeper(meta, bytes, 60_000, createLogger("sweep-test", "silent"), () => now);
      expect(await sweeper.sweep()).toBe(0);
      now += 2;
      expect(await sweeper.sweep()).toBe(1);
      expect(await meta.byId("101")).toBeNull();
      expect(await bytes.get("101")).toBeNull();
      expect(await meta.byId("102")).not.toBeNull();
      const kept = await bytes.get("102");
      expect(kept && Buffer.concat(await kept.toArray()).toString()).toBe("bytes of 102");
    } finally {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
