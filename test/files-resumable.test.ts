import { readdirSync } from "node:fs";
import { join } from "node:path";
import { ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import type { Auth, LoginAnswer } from "@shardchat/sdk";
import { GateClient } from "@shardchat/sdk";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../src/errors.js";
import { convIdForPair } from "../src/ids/identifiers.js";
import { filler, sha256 } from "./helpers/file-bytes.js";
import { startMotoServer } from "./helpers/moto-server.js";
import type { S3Server } from "./helpers/s3-server.js";
import { type Services, startServices } from "./helpers/services.js";
import { startTcpProxy, type TcpProxy } from "./helpers/tcp-proxy.js";
import { codeOf } from "./helpers/waits.js";

/**
 * Resumable uploads (tus, /v1/files/tus) through real gate processes, on local disk and on an
 * S3-protocol server on loopback (moto: s3rver serves no ListParts, which `@tus/s3-store` needs):
 * a file larger than a multipart upload may be, an upload cut at half and resumed, refusals,
 * and an image's preview.
 */
const MULTIPART_MAX_BYTES = 64 * 1024;
const RESUMABLE_MAX_BYTES = 8 * 1024 * 1024;
const BIG = 6 * 1024 * 1024;
/** One PATCH each: progress past a chunk's end means gate confirmed the chunk. */
const CHUNK = 1024 * 1024;
/** Request lines and headers of a few tus requests, beside the bytes of the file. */
const HEADER_SLACK = 16 * 1024;

const auth = (l: LoginAnswer): Auth => ({ uid: l.uid, token: l.token });

/** tus's Upload-Metadata: keys with base64 values. */
const metadataHeader = (m: Record<string, string>) =>
  Object.entries(m)
    .map(([k, v]) => `${k} ${Buffer.from(v).toString("base64")}`)
    .join(",");

describe.each(["local", "s3"] as const)("resumable uploads (tus), FILE_STORE=%s", (kind) => {
  let s3: S3Server | undefined;
  let bucket: S3Client | undefined;
  let s: Services;
  let proxy: TcpProxy;
  /** Gate's client through the proxy, which counts what it sends. */
  let viaProxy: GateClient;
  let a: LoginAnswer;
  let b: LoginAnswer;
  let c: LoginAnswer;
  let ab: string;

  /** A tus request to gate as who (no login headers without one). */
  const tus = (
    method: string,
    path: string,
    who: LoginAnswer | null,
    headers: Record<string, string> = {},
    body?: Buffer<ArrayBuffer>,
  ) =>
    fetch(new URL(path, s.gateUrl), {
      method,
      headers: {
        "tus-resumable": "1.0.0",
        ...(who ? { authorization: `Bearer ${who.token}`, "x-uid": who.uid } : {}),
        ...headers,
      },
      body,
    });
  const create = (who: LoginAnswer | null, length: number, metadata: Record<string, string>) =>
    tus("POST", "/v1/files/tus", who, { "upload-length": String(length), "upload-metadata": metadataHeader(metadata) });

  /** What tus keeps of uploads not finished (or not cleaned up): none once each is finished or refused. */
  const leftovers = async (): Promise<string[]> => {
    if (!bucket || !s3) return readdirSync(join(s.fileDir, "tus-partial"));
    const listed = await bucket.send(new ListObjectsV2Command({ Bucket: s3.bucket }));
    const uploads = await bucket.send(new ListMultipartUploadsCommand({ Bucket: s3.bucket }));
    const keys = (listed.Contents ?? []).map((o) => o.Key ?? "").filter((k) => !/^\d+(_thumb)?$/.test(k));
    return [...keys, ...(uploads.Uploads ?? []).map((u) => `multipart ${u.Key}`)];
  };

  beforeAll(async () => {
    if (kind === "s3") {
      s3 = await startMotoServer();
      bucket = new S3Client({
        region: "us-east-1",
        endpoint: s3.endpoint,
        forcePathStyle: true,
        credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      });
    }
    s = await startServices(`tus-${kind}`, 1, {
      GATE_FILE_MAX_BYTES: MULTIPART_MAX_BYTES,
      GATE_RESUMABLE_MAX_BYTES: RESUMABLE_MAX_BYTES,
      GATE_FILE_TYPES: "image/*,application/octet-stream",
      ...(s3
        ? {
            FILE_STORE: "s3" as const,
            S3_ENDPOINT: s3.endpoint,
            S3_REGION: "us-east-1",
            S3_BUCKET: s3.bucket,
            S3_ACCESS_KEY_ID: s3.accessKeyId,
            S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
            S3_FORCE_PATH_STYLE: true,
          }
        : {}),
    });
    proxy = await startTcpProxy("127.0.0.1", s.config.GATE_PORT);
    viaProxy = new GateClient(`http://127.0.0.1:${proxy.port}`);
    const users = await Promise.all(["a", "b", "c"].map((n) => s.register(`tus${kind}${n}`)));
    const logins = await Promise.all(users.map((u) => s.gate.login(u.email, u.password)));
    [a, b, c] = logins as [LoginAnswer, LoginAnswer, LoginAnswer];
    ab = convIdForPair(a.uid, b.uid);
  }, 200_000);

  afterAll(async () => {
    await proxy?.close();
    await s?.stop();
    bucket?.destroy();
    await s3?.close();
  });

  it("a file past the multipart bound uploads whole; the other participant downloads the same bytes", async () => {
    const bytes = filler(BIG, 3);
    expect(await codeOf(s.gate.upload(auth(a), ab, new Blob([bytes]), "big.bin"))).toBe(ErrorCode.FILE_TOO_LARGE);
    const stored = await s.gate.uploadResumable(auth(a), ab, bytes, "../big.bin", {
      contentType: "application/octet-stream",
    });
    expect(stored).toEqual({
      error: ErrorCode.OK,
      id: expect.stringMatching(/^\d+$/),
      url: `/v1/files/${stored.id}`,
      name: "big.bin",
      size: BIG,
      contentType: "application/octet-stream",
    });
    const got = await s.gate.download(auth(b), stored.id);
    expect(got.bytes.length).toBe(BIG);
    expect(sha256(got.bytes)).toBe(sha256(bytes));
    expect(await leftovers()).toEqual([]);
  });

  it("an upload cut at half goes on from where gate has it, sending only the rest", async () => {
    const bytes = filler(BIG, 11);
    const stop = new AbortController();
    let url: string | undefined;
    const cut = viaProxy.uploadResumable(auth(a), ab, bytes, "resumed.bin", {
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

    const head = await tus("HEAD", new URL(url as string).pathname, a);
    expect(head.status).toBe(200);
    const offset = Number(head.headers.get("upload-offset"));
    expect(offset).toBeGreaterThanOrEqual(BIG / 2);
    expect(offset).toBeLessThan(BIG);
    expect(head.headers.get("upload-length")).toBe(String(BIG));

    proxy.sent = 0;
    let firstProgress: number | undefined;
    const stored = await viaProxy.uploadResumable(auth(a), ab, bytes, "resumed.bin", {
      contentType: "application/octet-stream",
      chunkSize: CHUNK,
      resumeFrom: url,
      onProgress: (sent) => {
        firstProgress ??= sent;
      },
    });
    expect(new URL(url as string).pathname).toBe(`/v1/files/tus/${stored.id}`);
    expect(firstProgress).toBeGreaterThanOrEqual(offset);
    expect(proxy.sent).toBeGreaterThanOrEqual(BIG - offset);
    expect(proxy.sent).toBeLessThan(BIG - offset + HEADER_SLACK);
    const got = await s.gate.download(auth(b), stored.id);
    expect(sha256(got.bytes)).toBe(sha256(bytes));
    // Finished, the upload URL names nothing: it cannot be finished (stored) twice.
    const again = await tus("PATCH", new URL(url as string).pathname, a, {
      "upload-offset": String(BIG),
      "content-type": "application/offset+octet-stream",
    });
    expect(again.status).toBe(404);
    expect(await leftovers()).toEqual([]);
  });

  it("refuses strangers, other users, missing tokens, types and lengths, and stores nothing of them", async () => {
    const meta = { convId: ab, filename: "x.bin", filetype: "application/octet-stream" };
    const sdk = (who: LoginAnswer, convId: string, type: string) =>
      codeOf(s.gate.uploadResumable(auth(who), convId, filler(1000, 1), "x", { contentType: type }));
    expect(await sdk(c, ab, "application/octet-stream")).toBe(ErrorCode.NOT_PARTICIPANT);
    expect(await sdk(a, ab, "text/html")).toBe(ErrorCode.FILE_TYPE_NOT_ALLOWED);

    const tooLong = await create(a, RESUMABLE_MAX_BYTES + 1, meta);
    expect(tooLong.status).toBe(413);
    expect((await tooLong.json()).error).toBe(ErrorCode.FILE_TOO_LARGE);
    const noToken = await create(null, 1000, meta);
    expect(noToken.status).toBe(401);
    expect((await noToken.json()).error).toBe(ErrorCode.TOKEN_INVALID);
    const wrongToken = await create({ ...a, token: `${a.token}x` }, 1000, meta);
    expect(wrongToken.status).toBe(401);
    expect([ErrorCode.TOKEN_INVALID, ErrorCode.TOKEN_EXPIRED]).toContain((await wrongToken.json()).error);
    const deferred = await tus("POST", "/v1/files/tus", a, {
      "upload-defer-length": "1",
      "upload-metadata": metadataHeader(meta),
    });
    expect(deferred.status).toBe(400);
    expect(await leftovers()).toEqual([]);

    // A's upload under way: B can neither read, continue nor delete it.
    const created = await create(a, 1000, meta);
    expect(created.status).toBe(201);
    const path = created.headers.get("location") as string;
    expect(path).toMatch(/^\/v1\/files\/tus\/\d+$/);
    const patch = (who: LoginAnswer) =>
      tus(
        "PATCH",
        path,
        who,
        { "upload-offset": "0", "content-type": "application/offset+octet-stream" },
        filler(100, 2),
      );
    expect((await tus("HEAD", path, b)).status).toBe(403);
    const bPatch = await patch(b);
    expect(bPatch.status).toBe(403);
    expect((await bPatch.json()).error).toBe(ErrorCode.NOT_PARTICIPANT);
    expect((await tus("DELETE", path, b)).status).toBe(403);
    expect((await tus("HEAD", path, null)).status).toBe(401);
    expect((await tus("HEAD", path, a)).headers.get("upload-offset")).toBe("0");
    expect((await patch(a)).headers.get("upload-offset")).toBe("100");
    expect((await tus("DELETE", path, a)).status).toBe(204);
    expect((await tus("HEAD", path, a)).status).toBe(404);
    expect(await leftovers()).toEqual([]);
  });

  it("an image uploaded by tus gets its dimensions and thumbnail, as a multipart one does", async () => {
    const image = await sharp({ create: { width: 40, height: 30, channels: 3, background: "#3a6" } })
      .png()
      .toBuffer();
    const stored = await s.gate.uploadResumable(auth(a), ab, new Blob([image]), "photo.png", {
      contentType: "image/png",
    });
    expect(stored.media).toMatchObject({
      width: 40,
      height: 30,
      durationMs: 0,
      thumbnail: { width: 40, height: 30, contentType: "image/webp" },
    });
    const link = await s.gate.fileLink(auth(b), stored.id, "thumbnail");
    const thumbnail = await fetch(link.url);
    expect(thumbnail.status).toBe(200);
    const info = await sharp(Buffer.from(await thumbnail.arrayBuffer())).metadata();
    expect(info).toMatchObject({ format: "webp", width: 40, height: 30 });
  });
});
