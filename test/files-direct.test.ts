import type { Auth, LoginAnswer, UploadedMedia } from "@shardchat/sdk";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../src/errors.js";
import type { PresignedRequest } from "../src/files/ports.js";
import { connectS3FileStore, type S3FileStore } from "../src/files/s3.js";
import { UploadSweeper } from "../src/gate/upload-sweeper.js";
import { UploadTickets } from "../src/gate/upload-tickets.js";
import { convIdForPair } from "../src/ids/identifiers.js";
import { createLogger } from "../src/log/logger.js";
import { MysqlFileMetaStore } from "../src/storage/mysql/file-meta-store.js";
import { createPool } from "../src/storage/mysql/pool.js";
import { filler, sha256 } from "./helpers/file-bytes.js";
import { type S3Server, startS3Server } from "./helpers/s3-server.js";
import { type Services, startServices } from "./helpers/services.js";
import { codeOf } from "./helpers/waits.js";

/**
 * Files with FILE_STORE=s3, every service its own process and the object store a real
 * S3-protocol server on loopback: clients PUT and GET the bytes at presigned URLs of the
 * store, and gate only checks, signs and records.
 */
const MAX_FILE_BYTES = 64 * 1024;
/** Two and a half of the largest files: more than A uploads here, less than three full ones. */
const UPLOAD_BYTES_PER_DAY = 2.5 * 64 * 1024;
/** Bytes one user may keep stored: more than the daily budget, so only the quota's own case meets it. */
const STORAGE_MAX_BYTES = 1024 * 1024;

let s3: S3Server;
let s: Services;
/** The bucket as gate sees it, to look at what is stored. */
let store: S3FileStore;
let a: LoginAnswer;
let b: LoginAnswer;
let c: LoginAnswer;
const auth = (l: LoginAnswer): Auth => ({ uid: l.uid, token: l.token });

interface Started {
  error: number;
  id: string;
  upload: PresignedRequest;
  ticket: string;
}
interface Stored {
  error: number;
  id: string;
  url: string;
  name: string;
  size: number;
  contentType: string;
  media?: UploadedMedia;
}

/** A POST to gate with the login headers; the JSON answer, whatever its code. */
async function post<T>(who: LoginAnswer, path: string, body?: object): Promise<T & { error: number }> {
  const res = await fetch(`${s.gateUrl}${path}`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${who.token}`,
      "x-uid": who.uid,
      ...(body ? { "content-type": "application/json" } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  return (await res.json()) as T & { error: number };
}

const start = (who: LoginAnswer, file: { convId: string; name: string; size: number; contentType: string }) =>
  post<Started>(who, "/v1/files/uploads", file);
const complete = (who: LoginAnswer, id: string, ticket: string) =>
  post<Stored>(who, `/v1/files/${id}/complete`, { ticket });

/** The client's PUT of the bytes to the store, as gate signed it. */
async function put(upload: PresignedRequest, bytes: Uint8Array<ArrayBuffer>, headers = upload.headers) {
  const res = await fetch(upload.url, { method: upload.method, headers, body: bytes });
  expect(res.status, await res.text()).toBe(200);
}

beforeAll(async () => {
  s3 = await startS3Server();
  s = await startServices("files-direct", 1, {
    FILE_STORE: "s3",
    S3_ENDPOINT: s3.endpoint,
    S3_BUCKET: s3.bucket,
    S3_ACCESS_KEY_ID: s3.accessKeyId,
    S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
    S3_FORCE_PATH_STYLE: true,
    GATE_FILE_MAX_BYTES: MAX_FILE_BYTES,
    GATE_FILE_TYPES: "image/*,text/plain",
    GATE_UPLOAD_BYTES_PER_USER_PER_DAY: UPLOAD_BYTES_PER_DAY,
    GATE_USER_STORAGE_MAX_BYTES: STORAGE_MAX_BYTES,
  });
  store = connectS3FileStore(
    {
      region: s.config.S3_REGION,
      endpoint: s3.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    },
    { bucket: s3.bucket, keyPrefix: s.config.S3_KEY_PREFIX, partBytes: s.config.S3_PART_BYTES },
  );
  const users = await Promise.all(["directa", "directb", "directc"].map((n) => s.register(n)));
  const logins = await Promise.all(users.map((u) => s.gate.login(u.email, u.password)));
  [a, b, c] = logins as [LoginAnswer, LoginAnswer, LoginAnswer];
}, 200_000);

afterAll(async () => {
  store?.close();
  await s?.stop();
  await s3?.close();
});

describe("direct uploads and presigned downloads (FILE_STORE=s3)", () => {
  const bytes = filler(30_000, 7);
  let started: Started;
  let stored: Stored;

  it("A starts an upload: gate answers a presigned PUT on the store, not on gate, and a ticket", async () => {
    started = await start(a, {
      convId: convIdForPair(a.uid, b.uid),
      name: "../holiday.png",
      size: bytes.length,
      contentType: "image/png",
    });
    expect(started).toMatchObject({ error: ErrorCode.OK, id: expect.stringMatching(/^\d+$/) });
    expect(new URL(started.upload.url).origin).toBe(s3.endpoint);
    expect(started.upload).toMatchObject({
      method: "PUT",
      headers: { "content-type": "image/png", "content-length": String(bytes.length) },
    });
    expect(started.upload.expiresAtMs).toBeGreaterThan(Date.now());
    // Nothing is stored yet, and the file does not exist for anyone.
    expect(await store.head(started.id)).toBeNull();
    expect(await codeOf(s.gate.download(auth(a), started.id))).toBe(ErrorCode.NOT_FOUND);
  });

  it("completing before the PUT answers FILE_MISSING; after it, the file as a multipart upload answers it", async () => {
    expect((await complete(a, started.id, started.ticket)).error).toBe(ErrorCode.FILE_MISSING);
    await put(started.upload, bytes);
    stored = await complete(a, started.id, started.ticket);
    expect(stored).toEqual({
      error: ErrorCode.OK,
      id: started.id,
      url: `/v1/files/${started.id}`,
      name: "holiday.png",
      size: bytes.length,
      contentType: "image/png",
    });
    // Completing again answers the same file.
    expect(await complete(a, started.id, started.ticket)).toEqual(stored);
  });

  it("B's link is a presigned URL of the store: the GET gives the bytes, a ranged GET 206", async () => {
    const link = await s.gate.fileLink(auth(b), stored.id);
    // The bytes never pass through gate: the link is the store's.
    expect(new URL(link.url).origin).toBe(s3.endpoint);
    expect(new URL(link.url).origin).not.toBe(new URL(s.gateUrl).origin);
    expect(link.url).not.toContain(b.token);
    expect(link.expiresAtMs).toBeGreaterThan(Date.now());
    expect(link.expiresAtMs).toBeLessThanOrEqual(Date.now() + s.config.FILE_URL_TTL_SECONDS * 1000);
    const whole = await fetch(link.url);
    expect(whole.status).toBe(200);
    expect(whole.headers.get("content-type")).toBe("image/png");
    expect(sha256(new Uint8Array(await whole.arrayBuffer()))).toBe(sha256(bytes));
    const part = await fetch(link.url, { headers: { range: "bytes=100-199" } });
    expect([part.status, part.headers.get("content-range")]).toEqual([206, `bytes 100-199/${bytes.length}`]);
    expect(Buffer.from(await part.arrayBuffer()).equals(Buffer.from(bytes.subarray(100, 200)))).toBe(true);
  });

  it("gate still serves the file by headers from the store, ranges too", async () => {
    const got = await s.gate.download(auth(b), stored.id);
    expect(sha256(got.bytes)).toBe(sha256(bytes));
    const res = await fetch(`${s.gateUrl}/v1/files/${stored.id}`, {
      headers: { authorization: `Bearer ${b.token}`, "x-uid": b.uid, range: "bytes=-10" },
    });
    expect([res.status, res.headers.get("content-range"), res.headers.get("accept-ranges")]).toEqual([
      206,
      `bytes ${bytes.length - 10}-${bytes.length - 1}/${bytes.length}`,
      "bytes",
    ]);
    expect(Buffer.from(await res.arrayBuffer()).equals(Buffer.from(bytes.subarray(-10)))).toBe(true);
  });

  it("C, who is not in the conversation, gets NOT_PARTICIPANT for the link and for starting an upload", async () => {
    expect(await codeOf(s.gate.fileLink(auth(c), stored.id))).toBe(ErrorCode.NOT_PARTICIPANT);
    const refused = await start(c, {
      convId: convIdForPair(a.uid, b.uid),
      name: "c.png",
      size: 10,
      contentType: "image/png",
    });
    expect(refused.error).toBe(ErrorCode.NOT_PARTICIPANT);
  });

  it("refuses a start past GATE_FILE_MAX_BYTES or outside GATE_FILE_TYPES; exactly the limit is fine", async () => {
    const convId = convIdForPair(a.uid, b.uid);
    const file = { convId, name: "f.png", size: MAX_FILE_BYTES, contentType: "image/png" };
    expect((await start(a, { ...file, size: MAX_FILE_BYTES + 1 })).error).toBe(ErrorCode.FILE_TOO_LARGE);
    expect((await start(a, { ...file, contentType: "text/html" })).error).toBe(ErrorCode.FILE_TYPE_NOT_ALLOWED);
    expect((await start(a, file)).error).toBe(ErrorCode.OK);
  });

  it("refuses another user's ticket and a tampered one; the uploader's own still completes", async () => {
    const data = filler(2_000, 3);
    const ticketed = await start(a, {
      convId: convIdForPair(a.uid, b.uid),
      name: "note.txt",
      size: data.length,
      contentType: "text/plain",
    });
    await put(ticketed.upload, data);
    // B is in the conversation, but the upload is A's.
    expect((await complete(b, ticketed.id, ticketed.ticket)).error).toBe(ErrorCode.NOT_PARTICIPANT);
    const [payload, signature] = ticketed.ticket.split(".") as [string, string];
    // A payload claiming another size, signed with the old signature.
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString());
    const forged = Buffer.from(JSON.stringify({ ...claims, size: 1 })).toString("base64url");
    expect((await complete(a, ticketed.id, `${forged}.${signature}`)).error).toBe(ErrorCode.INVALID_ARGUMENT);
    const flipped = `${signature.slice(0, -1)}${signature.endsWith("A") ? "B" : "A"}`;
    expect((await complete(a, ticketed.id, `${payload}.${flipped}`)).error).toBe(ErrorCode.INVALID_ARGUMENT);
    // A good ticket names one upload: not another id.
    expect((await complete(a, stored.id, ticketed.ticket)).error).toBe(ErrorCode.INVALID_ARGUMENT);
    // A ticket signed with another key (another deployment's gate) is not gate's.
    const foreign = new UploadTickets(Buffer.from("another key"), 60_000).issue({ ...claims, uid: a.uid });
    expect((await complete(a, ticketed.id, foreign.ticket)).error).toBe(ErrorCode.INVALID_ARGUMENT);
    // None of that touched the upload.
    const done = await complete(a, ticketed.id, ticketed.ticket);
    expect(done).toMatchObject({ error: ErrorCode.OK, id: ticketed.id, size: data.length, contentType: "text/plain" });
    expect(sha256((await s.gate.download(auth(b), ticketed.id)).bytes)).toBe(sha256(data));
  });

  it("completing with other bytes than declared is refused, and the object is gone", async () => {
    const declared = 5_000;
    const wrong = await start(a, {
      convId: convIdForPair(a.uid, b.uid),
      name: "short.png",
      size: declared,
      contentType: "image/png",
    });
    // A real S3 refuses a PUT whose length is not the signed one; s3rver checks no signature,
    // which lets this stand for a store that took what it should not have.
    await put(wrong.upload, filler(declared - 1, 5), { "content-type": "image/png" });
    expect((await store.head(wrong.id))?.size).toBe(declared - 1);
    expect((await complete(a, wrong.id, wrong.ticket)).error).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await store.head(wrong.id)).toBeNull();
    expect(await codeOf(s.gate.download(auth(a), wrong.id))).toBe(ErrorCode.NOT_FOUND);
    // Now it is missing altogether.
    expect((await complete(a, wrong.id, wrong.ticket)).error).toBe(ErrorCode.FILE_MISSING);
  });
});

describe("direct uploads count against the daily budgets", () => {
  it("a start spends its declared bytes: past GATE_UPLOAD_BYTES_PER_USER_PER_DAY, RATE_LIMITED", async () => {
    const file = {
      convId: convIdForPair(c.uid, a.uid),
      name: "big.png",
      size: MAX_FILE_BYTES,
      contentType: "image/png",
    };
    expect((await start(c, file)).error).toBe(ErrorCode.OK);
    expect((await start(c, file)).error).toBe(ErrorCode.OK);
    expect((await start(c, file)).error).toBe(ErrorCode.RATE_LIMITED);
    // The refused start spent nothing: half a file still fits.
    expect((await start(c, { ...file, size: MAX_FILE_BYTES / 2 })).error).toBe(ErrorCode.OK);
  });
});

describe("direct uploads and the storage quota (issue 19)", () => {
  it("a start past GATE_USER_STORAGE_MAX_BYTES, by its declared size, answers STORAGE_QUOTA_EXCEEDED", async () => {
    const registered = await s.register("directquota");
    const u = await s.gate.login(registered.email, registered.password);
    const convId = convIdForPair(u.uid, a.uid);
    const pool = createPool(s.config);
    try {
      // What u stores already: all but 100 bytes of its quota.
      await new MysqlFileMetaStore(pool).create({
        id: "7200000000000000001",
        owner: u.uid,
        convId,
        name: "earlier.bin",
        size: STORAGE_MAX_BYTES - 100,
        contentType: "text/plain",
        createdAt: Date.now(),
      });
    } finally {
      await pool.end();
    }
    const file = { convId, name: "q.txt", size: 101, contentType: "text/plain" };
    expect((await start(u, file)).error).toBe(ErrorCode.STORAGE_QUOTA_EXCEEDED);
    expect((await start(u, { ...file, size: 100 })).error).toBe(ErrorCode.OK);
  });
});

describe("image previews in the object store (issue 19)", () => {
  it("a direct upload of an image and a multipart one both get a thumbnail in the bucket, linked by a presigned URL", async () => {
    const [p, r] = await Promise.all(["directp", "directr"].map((n) => s.register(n)));
    const [pl, rl] = (await Promise.all([p, r].map((u) => s.gate.login(u?.email ?? "", u?.password ?? "")))) as [
      LoginAnswer,
      LoginAnswer,
    ];
    const convId = convIdForPair(pl.uid, rl.uid);
    const photo = new Uint8Array(
      await sharp({ create: { width: 640, height: 480, channels: 3, background: "#20a040" } })
        .jpeg()
        .toBuffer(),
    );
    const began = await start(pl, { convId, name: "park.jpg", size: photo.length, contentType: "image/jpeg" });
    await put(began.upload, photo);
    const direct = await complete(pl, began.id, began.ticket);
    const multipart = await s.gate.upload(auth(pl), convId, new Blob([photo], { type: "image/jpeg" }), "again.jpg");
    for (const file of [direct, multipart]) {
      expect(file.media).toEqual({
        width: 640,
        height: 480,
        durationMs: 0,
        thumbnail: { width: 320, height: 240, size: expect.stringMatching(/^\d+$/), contentType: "image/webp" },
      });
      // Beside its original in the bucket, never through gate on the way out.
      expect(await store.head(`${file.id}_thumb`)).toMatchObject({ size: Number(file.media?.thumbnail?.size) });
      const link = await s.gate.fileLink(auth(rl), file.id, "thumbnail");
      expect(new URL(link.url).origin).toBe(new URL(s3.endpoint).origin);
      const res = await fetch(link.url);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("image/webp");
      const meta = await sharp(Buffer.from(await res.arrayBuffer())).metadata();
      expect([meta.format, meta.width, meta.height]).toEqual(["webp", 320, 240]);
    }
  });
});

describe("UploadTickets", () => {
  it("carries its claims until it expires, then says so; a ticket of another key is invalid", () => {
    let now = 1_000;
    const tickets = new UploadTickets(Buffer.from("key one"), 60_000, () => now);
    const claims = {
      id: "42",
      uid: "7",
      convId: "p:7:8",
      name: "a.png",
      size: 10,
      contentType: "image/png",
      durationMs: 0,
    };
    const { ticket, expiresAtMs } = tickets.issue(claims);
    expect(expiresAtMs).toBe(61_000);
    expect(tickets.check(ticket)).toEqual({ claims, expired: false });
    now = 61_001;
    expect(tickets.check(ticket)).toEqual({ claims, expired: true });
    expect(new UploadTickets(Buffer.from("key two"), 60_000).check(ticket)).toBe("invalid");
    for (const bad of [undefined, 42, "", "no-dot", `${ticket}x`, `x${ticket}`]) {
      expect(tickets.check(bad), String(bad)).toBe("invalid");
    }
  });
});

// Last: its sweep runs with a clock past every upload ticket's lifetime.
describe("abandoned direct uploads (issue 19)", () => {
  it("an upload started and PUT but never completed is deleted from the bucket by gate's sweep", async () => {
    const convId = convIdForPair(b.uid, a.uid);
    const abandoned = await start(b, { convId, name: "left.txt", size: 500, contentType: "text/plain" });
    await put(abandoned.upload, filler(500, 3));
    const finished = await start(b, { convId, name: "done.txt", size: 400, contentType: "text/plain" });
    await put(finished.upload, filler(400, 4));
    expect((await complete(b, finished.id, finished.ticket)).error).toBe(ErrorCode.OK);
    const pool = createPool(s.config);
    try {
      const meta = new MysqlFileMetaStore(pool);
      // A message names the completed one (else the sweep of unsent uploads would take it too).
      expect(await meta.markSent(finished.id, Date.now())).toBe(true);
      let now = Date.now();
      const sweeper = new UploadSweeper(
        meta,
        store,
        s.config.GATE_UNSENT_UPLOAD_TTL_MS,
        createLogger("sweep-test", "silent"),
        () => now,
      );
      // Within the ticket's lifetime it may still be completed: kept.
      await sweeper.sweep();
      expect(await store.head(abandoned.id)).toEqual(expect.objectContaining({ size: 500 }));
      now += s.config.GATE_UNSENT_UPLOAD_TTL_MS + 1000;
      expect(await sweeper.sweep()).toBeGreaterThanOrEqual(1);
      expect(await store.head(abandoned.id)).toBeNull();
      expect(await store.head(finished.id)).toEqual(expect.objectContaining({ size: 400 }));
      expect((await s.gate.download(auth(a), finished.id)).bytes.byteLength).toBe(400);
    } finally {
      await pool.end();
    }
  });
});
