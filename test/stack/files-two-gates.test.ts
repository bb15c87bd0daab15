import { HeadObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { type Auth, type ChatClient, GateClient, type LoginAnswer, openChat } from "@shardchat/sdk";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ChatMessage, MessageKind } from "../../packages/protocol/src/wire.js";
import { ErrorCode } from "../../src/errors.js";
import type { PresignedRequest } from "../../src/files/ports.js";
import { convIdForPair } from "../../src/ids/identifiers.js";
import { filler, sha256 } from "../helpers/file-bytes.js";
import { waitFor } from "../helpers/processes.js";
import { codeFromMail } from "../helpers/smtp-sink.js";
import { type StackServices, stackInfraUp, stackS3Client, startStackServices } from "../helpers/stack.js";
import { codeOf } from "../helpers/waits.js";

/**
 * The local stack's two gates on one bucket of its S3 server (moto_server), as `npm run
 * stack:up` starts them: an upload started on one gate is completed on the other, a resumable
 * (tus) upload cut on one gate goes on at the other, and either gate hands out links to what
 * the other stored. The gates share nothing but the bucket, Redis and the databases.
 */
const BIG = 6 * 1024 * 1024;
/** One PATCH each: progress past a chunk's end means gate confirmed the chunk. */
const CHUNK = 1024 * 1024;

/**
 * A quota the earlier cases' uploads stay under, and a sweep quick enough to watch: an unsent
 * upload lives UNSENT_TTL_MS (long enough for every case to send or fetch what it uploads).
 */
const MiB = 1024 * 1024;
/** Direct uploads are at most GATE_FILE_MAX_BYTES (10 MB) each: two of them pass the quota. */
const QUOTA = 16 * MiB;
const UNSENT_TTL_MS = 45_000;
const QUOTA_AND_SWEEP = {
  GATE_USER_STORAGE_MAX_BYTES: String(QUOTA),
  GATE_UNSENT_UPLOAD_TTL_MS: String(UNSENT_TTL_MS),
  GATE_UPLOAD_SWEEP_INTERVAL_MS: "2000",
};

let stack: StackServices;
let gate1: GateClient;
let gate2: GateClient;
let bucket: S3Client;
let a: LoginAnswer;
let b: LoginAnswer;
let c: LoginAnswer;
let chatA: ChatClient;
let chatB: ChatClient;
const receivedByB: ChatMessage[] = [];
const auth = (l: LoginAnswer): Auth => ({ uid: l.uid, token: l.token });

async function register(name: string): Promise<LoginAnswer> {
  const email = `${name}@files-stack.test`;
  const password = `pw-${name}-secret`;
  await gate1.requestVerifyCode(email);
  const code = codeFromMail(await stack.smtp.waitForMail(email));
  await gate1.register({ user: name, email, password, code });
  return gate2.login(email, password);
}

/** A POST to one gate with the login headers; the JSON answer, whatever its code. */
async function post<T>(gateUrl: string, who: LoginAnswer, path: string, body?: object): Promise<T & { error: number }> {
  const res = await fetch(`${gateUrl}${path}`, {
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

/** A direct upload started at one gate (POST /v1/files/uploads); the answer, whatever its code. */
function startDirect(gateUrl: string, who: LoginAnswer, convId: string, name: string, size: number) {
  return post<{ id: string; upload: PresignedRequest; ticket: string }>(gateUrl, who, "/v1/files/uploads", {
    convId,
    name,
    size,
    contentType: "application/octet-stream",
  });
}

async function inBucket(key: string): Promise<boolean> {
  return bucket.send(new HeadObjectCommand({ Bucket: stack.stack.s3.bucket, Key: key })).then(
    () => true,
    () => false,
  );
}

beforeAll(async () => {
  await stackInfraUp();
  stack = await startStackServices("files", { chatNodes: 2, env: QUOTA_AND_SWEEP });
  gate1 = new GateClient(stack.gateUrl);
  gate2 = new GateClient(stack.gate2Url);
  bucket = stackS3Client(stack.stack);
  [a, b, c] = (await Promise.all(["filesa", "filesb", "filesc"].map(register))) as [
    LoginAnswer,
    LoginAnswer,
    LoginAnswer,
  ];
  chatA = await openChat(a, "tcp");
  chatB = await openChat(b, "ws");
  chatB.on("message", (m) => receivedByB.push(m));
}, 300_000);

afterAll(async () => {
  await Promise.all([chatA, chatB].map((chat) => chat?.close().catch(() => undefined)));
  bucket?.destroy();
  await stack?.stop();
}, 300_000);

describe("two gates on the stack's S3 bucket", () => {
  let directId: string;
  let abandonedId: string;
  let unsentId: string;

  it("a direct upload started on gate 1 completes on gate 2; B's link from gate 2 is the store's", async () => {
    const bytes = filler(200_000, 3);
    const started = await startDirect(stack.gateUrl, a, convIdForPair(a.uid, b.uid), "report.bin", bytes.length);
    expect(started.error).toBe(ErrorCode.OK);
    expect(new URL(started.upload.url).origin).toBe(stack.stack.s3.endpoint);
    const put = await fetch(started.upload.url, { method: "PUT", headers: started.upload.headers, body: bytes });
    expect(put.status, await put.text()).toBe(200);
    const stored = await post<{ id: string; name: string; size: number; contentType: string }>(
      stack.gate2Url,
      a,
      `/v1/files/${started.id}/complete`,
      { ticket: started.ticket },
    );
    expect(stored).toMatchObject({ error: ErrorCode.OK, id: started.id, size: bytes.length });
    directId = stored.id;

    // The reference travels through the chat nodes.
    await chatA.sendFile(b.uid, stored, "the report");
    await waitFor("B gets the file message", () => receivedByB.some((m) => m.file?.id === stored.id));

    const link = await gate2.fileLink(auth(b), stored.id);
    expect(new URL(link.url).origin).toBe(stack.stack.s3.endpoint);
    const whole = await fetch(link.url);
    expect(whole.status).toBe(200);
    expect(sha256(new Uint8Array(await whole.arrayBuffer()))).toBe(sha256(bytes));
    const part = await fetch(link.url, { headers: { range: "bytes=1000-1999" } });
    expect([part.status, part.headers.get("content-range")]).toEqual([206, `bytes 1000-1999/${bytes.length}`]);
    expect(Buffer.from(await part.arrayBuffer()).equals(bytes.subarray(1000, 2000))).toBe(true);
  });

  it("a tus upload cut at half on gate 1 goes on at gate 2 from where the bucket has it", async () => {
    const bytes = filler(BIG, 17);
    const convId = convIdForPair(a.uid, b.uid);
    const stop = new AbortController();
    let url: string | undefined;
    const cut = gate1.uploadResumable(auth(a), convId, bytes, "big.bin", {
      contentType: "application/octet-stream",
      chunkSize: CHUNK,
      signal: stop.signal,
      onUploadUrl: (u) => {
        url = u;
      },
      onProgress: (sent) => {
        if (sent > BIG / 2) stop.abort(new Error("cut at half"));
      },
    });
    await expect(cut).rejects.toThrow("cut at half");
    expect(url).toMatch(/\/v1\/files\/tus\/\d+$/);
    // At once at the other gate, while gate 1 may still be writing what it got of the cut request:
    // the upload's lock (in Redis) makes gate 2 wait for it.
    const atGate2 = new URL(new URL(url as string).pathname, stack.gate2Url).toString();
    let firstProgress: number | undefined;
    const stored = await gate2.uploadResumable(auth(a), convId, bytes, "big.bin", {
      contentType: "application/octet-stream",
      chunkSize: CHUNK,
      resumeFrom: atGate2,
      onProgress: (sent) => {
        firstProgress ??= sent;
      },
    });
    expect(new URL(atGate2).pathname).toBe(`/v1/files/tus/${stored.id}`);
    expect(firstProgress).toBeGreaterThanOrEqual(BIG / 2);
    expect(stored.size).toBe(BIG);
    const link = await gate1.fileLink(auth(b), stored.id);
    const got = new Uint8Array(await (await fetch(link.url)).arrayBuffer());
    expect(got.length).toBe(BIG);
    expect(sha256(got)).toBe(sha256(bytes));
    // Finished, the upload URL names nothing at either gate.
    for (const gateUrl of [stack.gateUrl, stack.gate2Url]) {
      const head = await fetch(new URL(new URL(url as string).pathname, gateUrl), {
        method: "HEAD",
        headers: { "tus-resumable": "1.0.0", authorization: `Bearer ${a.token}`, "x-uid": a.uid },
      });
      expect(head.status, gateUrl).toBe(404);
    }
  });

  it("an image uploaded through gate 2 has its thumbnail in the bucket, and gate 1 links it", async () => {
    const image = await sharp({ create: { width: 64, height: 48, channels: 3, background: "#36a" } })
      .png()
      .toBuffer();
    const stored = await gate2.upload(
      auth(a),
      convIdForPair(a.uid, b.uid),
      new Blob([image], { type: "image/png" }),
      "photo.png",
    );
    expect(stored.media).toMatchObject({ width: 64, height: 48, thumbnail: { contentType: "image/webp" } });
    expect(await inBucket(`${stored.id}_thumb`)).toBe(true);
    const link = await gate1.fileLink(auth(b), stored.id, "thumbnail");
    expect(new URL(link.url).origin).toBe(stack.stack.s3.endpoint);
    const thumbnail = await fetch(link.url);
    expect(thumbnail.status).toBe(200);
    expect(await sharp(Buffer.from(await thumbnail.arrayBuffer())).metadata()).toMatchObject({
      format: "webp",
      width: 64,
      height: 48,
    });
  });

  it("a voice message recorded through gate 2 reaches B as AUDIO with its length, and plays from gate 1's link", async () => {
    const recording = filler(48_000, 29);
    const voice = await gate2.upload(
      auth(a),
      convIdForPair(a.uid, b.uid),
      new Blob([recording], { type: "audio/webm" }),
      "voice.webm",
      { durationMs: 3_400 },
    );
    expect(voice.media).toEqual({ width: 0, height: 0, durationMs: 3_400 });
    await chatA.sendVoice(b.uid, voice);
    const got = await waitFor("B gets the voice message", () => receivedByB.find((m) => m.file?.id === voice.id));
    expect(got).toMatchObject({
      kind: MessageKind.AUDIO,
      file: { contentType: "audio/webm", media: { durationMs: 3_400 } },
    });
    const link = await gate1.fileLink(auth(b), voice.id);
    expect(new URL(link.url).origin).toBe(stack.stack.s3.endpoint);
    const played = await fetch(link.url);
    expect(sha256(new Uint8Array(await played.arrayBuffer()))).toBe(sha256(recording));
  });

  it("the storage quota is one per user across both gates: what gate 1 granted counts at gate 2", async () => {
    const toA = convIdForPair(c.uid, a.uid);
    const start = (gateUrl: string, size: number) => startDirect(gateUrl, c, toA, "big.bin", size);
    const first = await start(stack.gateUrl, 9 * MiB);
    expect(first.error).toBe(ErrorCode.OK);
    abandonedId = first.id;
    expect((await start(stack.gate2Url, 6 * MiB)).error).toBe(ErrorCode.OK);
    expect((await start(stack.gate2Url, 2 * MiB)).error).toBe(ErrorCode.STORAGE_QUOTA_EXCEEDED);
    expect((await start(stack.gateUrl, 2 * MiB)).error).toBe(ErrorCode.STORAGE_QUOTA_EXCEEDED);
    // A small upload within what is left is still taken, at either gate.
    const small = await gate2.upload(auth(c), toA, new Blob([filler(512, 5)], { type: "text/plain" }), "note.txt");
    unsentId = small.id;
    expect(await inBucket(small.id)).toBe(true);
  });

  it("a recalled file message's object leaves the bucket at the next sweep, whichever gate sweeps", async () => {
    const bytes = filler(20_000, 41);
    const stored = await gate1.upload(
      auth(a),
      convIdForPair(a.uid, b.uid),
      new Blob([bytes], { type: "application/octet-stream" }),
      "oops.bin",
    );
    const sent = await chatA.sendFile(b.uid, stored, "sent by mistake");
    expect(await inBucket(stored.id)).toBe(true);
    await chatA.recall(sent.convId, sent.seq);
    await waitFor("the recalled file's object is deleted", async () => !(await inBucket(stored.id)), 60_000);
    expect(await codeOf(gate2.fileLink(auth(b), stored.id))).toBe(ErrorCode.NOT_FOUND);
  });

  it(
    "an upload no message names and a direct upload never completed are deleted after their TTL, and free the quota",
    async () => {
      // Made by the quota case: without them this case would prove nothing.
      expect([unsentId, abandonedId].every((id) => /^\d+$/.test(id ?? ""))).toBe(true);
      await waitFor(
        "the unsent upload is deleted",
        async () =>
          !(await inBucket(unsentId)) && (await codeOf(gate1.fileLink(auth(c), unsentId))) === ErrorCode.NOT_FOUND,
        UNSENT_TTL_MS + 60_000,
      );
      // The abandoned direct uploads' reservations are gone too: 9 MiB more fits only if they are.
      const again = await waitFor(
        "the quota is free again",
        async () => {
          const answer = await startDirect(stack.gate2Url, c, convIdForPair(c.uid, a.uid), "again.bin", 9 * MiB);
          return answer.error === ErrorCode.OK ? answer : undefined;
        },
        60_000,
      );
      expect(again.id).not.toBe(abandonedId);
    },
    UNSENT_TTL_MS + 180_000,
  );

  it("C, who is no participant, gets NOT_PARTICIPANT from either gate", async () => {
    for (const gate of [gate1, gate2]) {
      expect(await codeOf(gate.fileLink(auth(c), directId))).toBe(ErrorCode.NOT_PARTICIPANT);
      expect(await codeOf(gate.download(auth(c), directId))).toBe(ErrorCode.NOT_PARTICIPANT);
    }
  });
});
