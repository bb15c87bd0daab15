import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../src/config/load.js";
import { createFileStore } from "../src/files/create.js";
import { LocalDiskFileStore } from "../src/files/local-disk.js";
import type { FileStore } from "../src/files/ports.js";
import { S3FileStore } from "../src/files/s3.js";
import { type S3Server, startS3Server } from "./helpers/s3-server.js";
import { startTcpProxy, type TcpProxy } from "./helpers/tcp-proxy.js";

/**
 * One FileStore contract, run over every adapter: local disk in a temporary directory, and the
 * S3 adapter against a real S3-protocol server (s3rver) on loopback. Then what only S3 has:
 * presigned URLs a client uses with plain HTTP.
 */

/** Larger than two of the S3 adapter's parts (S3_PART_BYTES' default, 8 MiB), and not a multiple of one. */
const LARGE_BYTES = 20 * 1024 * 1024 + 123;

interface OpenedStore {
  store: FileStore;
  /** Whether head answers the content type given to put. */
  keepsContentType: boolean;
  close(): Promise<void>;
}

const adapters: { name: string; open(): Promise<OpenedStore> }[] = [
  {
    name: "local disk",
    async open() {
      const dir = mkdtempSync(join(tmpdir(), "sc-file-store-"));
      return {
        store: new LocalDiskFileStore(dir),
        keepsContentType: false,
        close: async () => rmSync(dir, { recursive: true, force: true }),
      };
    },
  },
  {
    name: "S3 (s3rver)",
    async open() {
      const server = await startS3Server();
      const store = s3StoreOn(server);
      return {
        store,
        keepsContentType: true,
        close: async () => {
          store.close();
          await server.close();
        },
      };
    },
  },
];

/** The S3 adapter as gate makes it from its settings; clients reach the store at `publicEndpoint`. */
function s3StoreOn(server: S3Server, publicEndpoint = "", keyPrefix = "deploy-a/"): S3FileStore {
  const config = loadConfig({
    FILE_STORE: "s3",
    S3_ENDPOINT: server.endpoint,
    S3_PUBLIC_ENDPOINT: publicEndpoint,
    S3_BUCKET: server.bucket,
    S3_ACCESS_KEY_ID: server.accessKeyId,
    S3_SECRET_ACCESS_KEY: server.secretAccessKey,
    S3_FORCE_PATH_STYLE: "true",
    S3_KEY_PREFIX: keyPrefix,
  });
  const store = createFileStore(config);
  if (!(store instanceof S3FileStore)) throw new Error("FILE_STORE=s3 made no S3FileStore");
  return store;
}

let keys = 0;
/** A key no other case uses (decimal, as gate's file ids; derived keys as a thumbnail's). */
function newKey(suffix = ""): string {
  keys += 1;
  return `${Date.now()}${keys}${suffix}`;
}

async function bytesOf(stream: Readable | null): Promise<Buffer | null> {
  if (!stream) return null;
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** `total` random bytes in chunks of 64 KiB, hashed as they are made: never a whole-file buffer. */
function randomStream(total: number): { stream: Readable; sha256: () => string } {
  const hash = createHash("sha256");
  async function* chunks() {
    for (let sent = 0; sent < total; ) {
      const chunk = randomBytes(Math.min(64 * 1024, total - sent));
      hash.update(chunk);
      sent += chunk.length;
      yield chunk;
    }
  }
  return { stream: Readable.from(chunks()), sha256: () => hash.digest("hex") };
}

/** A body that sends `before` bytes, then fails as a client that went away. */
function failingStream(before: number): Readable {
  async function* chunks() {
    for (let sent = 0; sent < before; sent += 64 * 1024) yield randomBytes(Math.min(64 * 1024, before - sent));
    throw new Error("client went away");
  }
  return Readable.from(chunks());
}

describe.each(adapters)("FileStore on $name", (adapter) => {
  let opened: OpenedStore;
  let store: FileStore;

  beforeAll(async () => {
    opened = await adapter.open();
    store = opened.store;
  });

  afterAll(async () => {
    await opened?.close();
  });

  it("stores a stream and answers its byte count; get reads the same bytes back", async () => {
    const key = newKey();
    const body = randomBytes(100_000);
    expect(await store.put(key, Readable.from([body.subarray(0, 30_000), body.subarray(30_000)]))).toBe(body.length);
    expect((await bytesOf(await store.get(key)))?.equals(body)).toBe(true);
  });

  it("stores an empty stream as an empty object", async () => {
    const key = newKey();
    expect(await store.put(key, Readable.from([]))).toBe(0);
    expect(await bytesOf(await store.get(key))).toEqual(Buffer.alloc(0));
    expect((await store.head(key))?.size).toBe(0);
  });

  it("keeps derived keys (a thumbnail's) apart from their file's", async () => {
    const key = newKey();
    await store.put(key, Readable.from([Buffer.from("the file")]));
    await store.put(`${key}_thumb`, Readable.from([Buffer.from("its thumbnail")]));
    expect((await bytesOf(await store.get(key)))?.toString()).toBe("the file");
    expect((await bytesOf(await store.get(`${key}_thumb`)))?.toString()).toBe("its thumbnail");
  });

  it("answers null for a key that holds nothing", async () => {
    expect(await store.get(newKey())).toBeNull();
    expect(await store.get(newKey(), { start: 0, end: 3 })).toBeNull();
    expect(await store.head(newKey())).toBeNull();
  });

  it("reads a byte range, both ends included: the first bytes, the middle, the last byte", async () => {
    const key = newKey();
    const body = randomBytes(5000);
    await store.put(key, Readable.from([body]));
    expect(await bytesOf(await store.get(key, { start: 0, end: 9 }))).toEqual(body.subarray(0, 10));
    expect(await bytesOf(await store.get(key, { start: 1000, end: 2999 }))).toEqual(body.subarray(1000, 3000));
    expect(await bytesOf(await store.get(key, { start: 4999, end: 4999 }))).toEqual(body.subarray(4999));
  });

  it("heads an object: its size, and its content type where the store keeps one", async () => {
    const key = newKey();
    await store.put(key, Readable.from([Buffer.from("hello, file")]), { contentType: "text/plain" });
    const info = await store.head(key);
    expect(info?.size).toBe(11);
    expect(info?.contentType).toBe(opened.keepsContentType ? "text/plain" : undefined);
  });

  it("deletes: then there is nothing, and a second delete is fine", async () => {
    const key = newKey();
    await store.put(key, Readable.from([Buffer.from("short-lived")]));
    expect(await store.head(key)).not.toBeNull();
    await store.delete(key);
    expect(await store.get(key)).toBeNull();
    expect(await store.head(key)).toBeNull();
    await expect(store.delete(key)).resolves.toBeUndefined();
    await expect(store.delete(newKey())).resolves.toBeUndefined();
  });

  it.each([
    ["early (within the first S3 part)", 100_000],
    ["after more than one S3 part", 9 * 1024 * 1024],
  ])("leaves nothing under the key when the stream fails %s, and answers the stream's own error", async (_, before) => {
    const key = newKey();
    await expect(store.put(key, failingStream(before))).rejects.toThrow("client went away");
    expect(await store.get(key)).toBeNull();
    expect(await store.head(key)).toBeNull();
  });

  it("streams a 20 MB file in and out unchanged", async () => {
    const key = newKey();
    const source = randomStream(LARGE_BYTES);
    expect(await store.put(key, source.stream, { contentType: "application/zip" })).toBe(LARGE_BYTES);
    const stored = await store.get(key);
    const hash = createHash("sha256");
    for await (const chunk of stored ?? []) hash.update(chunk as Buffer);
    expect(hash.digest("hex")).toBe(source.sha256());
    expect((await store.head(key))?.size).toBe(LARGE_BYTES);
  }, 60_000);

  it("has direct transfers exactly when clients can reach the store (S3), not on local disk", () => {
    expect(store.direct !== undefined).toBe(opened.keepsContentType);
  });
});

describe("S3FileStore: presigned URLs for clients", () => {
  let server: S3Server;
  /** The address clients reach the store at: another port than gate's. */
  let publicDoor: TcpProxy;
  let publicEndpoint: string;
  let store: S3FileStore;

  beforeAll(async () => {
    server = await startS3Server();
    publicDoor = await startTcpProxy("127.0.0.1", Number(new URL(server.endpoint).port));
    publicEndpoint = `http://127.0.0.1:${publicDoor.port}`;
    store = s3StoreOn(server, publicEndpoint);
  });

  afterAll(async () => {
    store?.close();
    await publicDoor?.close();
    await server?.close();
  });

  const direct = () => {
    if (!store.direct) throw new Error("the S3 store has no direct transfers");
    return store.direct;
  };

  it("signs upload and download URLs for the public endpoint, not gate's", async () => {
    const key = newKey();
    const upload = await direct().uploadUrl(key, { contentType: "image/png", size: 4, expiresInSeconds: 60 });
    const download = await direct().downloadUrl(key, {
      contentType: "image/png",
      fileName: "a.png",
      inline: true,
      expiresInSeconds: 60,
    });
    for (const url of [upload.url, download.url]) {
      expect(new URL(url).origin).toBe(publicEndpoint);
      expect(new URL(url).pathname).toBe(`/${server.bucket}/deploy-a/${key}`);
    }
  });

  it("an upload URL takes a PUT with its headers; the store then holds those bytes and that type", async () => {
    const key = newKey();
    const body = randomBytes(3000);
    const before = Date.now();
    const upload = await direct().uploadUrl(key, { contentType: "image/png", size: body.length, expiresInSeconds: 60 });
    expect(upload.method).toBe("PUT");
    expect(upload.headers).toEqual({ "content-type": "image/png", "content-length": "3000" });
    expect(upload.expiresAtMs).toBeGreaterThanOrEqual(before + 60_000);
    expect(upload.expiresAtMs).toBeLessThanOrEqual(Date.now() + 60_000);
    // Both headers are part of the signature, so a client cannot change them.
    expect(new URL(upload.url).searchParams.get("X-Amz-SignedHeaders")).toBe("content-length;content-type;host");

    const res = await fetch(upload.url, { method: upload.method, headers: upload.headers, body });
    expect(res.status, await res.text()).toBe(200);
    expect(await bytesOf(await store.get(key))).toEqual(body);
    expect(await store.head(key)).toEqual({ size: 3000, contentType: "image/png" });
  });

  it("a download URL answers the bytes with the type and download name asked for, and ranges with 206", async () => {
    const key = newKey();
    const body = randomBytes(64);
    await store.put(key, Readable.from([body]), { contentType: "application/octet-stream" });
    const name = "Q3 report (final)'s copy — é.pdf";
    const { url } = await direct().downloadUrl(key, {
      contentType: "application/pdf",
      fileName: name,
      inline: false,
      expiresInSeconds: 60,
    });

    const whole = await fetch(url);
    expect(whole.status).toBe(200);
    expect(Buffer.from(await whole.arrayBuffer())).toEqual(body);
    expect(whole.headers.get("content-type")).toBe("application/pdf");
    const disposition = whole.headers.get("content-disposition") ?? "";
    expect(disposition).toMatch(/^attachment; filename\*=UTF-8''[^'()* ]+$/);
    expect(decodeURIComponent(disposition.split("''")[1] ?? "")).toBe(name);

    const part = await fetch(url, { headers: { range: "bytes=2-5" } });
    expect(part.status).toBe(206);
    expect(Buffer.from(await part.arrayBuffer())).toEqual(body.subarray(2, 6));

    const inline = await direct().downloadUrl(key, {
      contentType: "image/png",
      fileName: "a.png",
      inline: true,
      expiresInSeconds: 60,
    });
    const shown = await fetch(inline.url);
    expect(shown.headers.get("content-disposition")).toBe("inline; filename*=UTF-8''a.png");
    await shown.arrayBuffer();
  });

  it("a URL signed for 1 second works at once and is refused (403) 2 seconds later", async () => {
    const key = newKey();
    await store.put(key, Readable.from([Buffer.from("soon gone")]));
    // The signature's time counts whole seconds: sign at the start of one, so "at once" is well inside it.
    await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000)));
    const { url, expiresAtMs } = await direct().downloadUrl(key, {
      contentType: "text/plain",
      fileName: "a.txt",
      inline: true,
      expiresInSeconds: 1,
    });
    expect(expiresAtMs - Date.now()).toBeLessThanOrEqual(1000);
    const fresh = await fetch(url);
    expect(fresh.status).toBe(200);
    await fresh.arrayBuffer();
    await new Promise((r) => setTimeout(r, 2000));
    const late = await fetch(url);
    expect(late.status).toBe(403);
    await late.arrayBuffer();
  }, 10_000);

  it("keeps each deployment's objects under its key prefix", async () => {
    const other = s3StoreOn(server, "", "deploy-b/");
    try {
      const key = newKey();
      await store.put(key, Readable.from([Buffer.from("a's")]));
      expect(await other.get(key)).toBeNull();
      await other.put(key, Readable.from([Buffer.from("b's")]));
      expect((await bytesOf(await store.get(key)))?.toString()).toBe("a's");
      expect((await bytesOf(await other.get(key)))?.toString()).toBe("b's");
    } finally {
      other.close();
    }
  });
});

describe("createFileStore (FILE_STORE)", () => {
  it("makes the local-disk store by default, without direct transfers", () => {
    const store = createFileStore(loadConfig({ DATA_DIR: join(tmpdir(), "sc-unused") }));
    expect(store).toBeInstanceOf(LocalDiskFileStore);
    expect(store.direct).toBeUndefined();
  });

  it("refuses FILE_STORE=s3 without S3_BUCKET, and half a key pair, at start", () => {
    expect(() => createFileStore(loadConfig({ FILE_STORE: "s3" }))).toThrow(ConfigError);
    expect(() => createFileStore(loadConfig({ FILE_STORE: "s3" }))).toThrow(/S3_BUCKET is required/);
    expect(() => createFileStore(loadConfig({ FILE_STORE: "s3", S3_BUCKET: "b", S3_ACCESS_KEY_ID: "id" }))).toThrow(
      /S3_SECRET_ACCESS_KEY/,
    );
    expect(() => loadConfig({ FILE_STORE: "nfs" })).toThrow(ConfigError);
    expect(() => loadConfig({ S3_ENDPOINT: "not a url" })).toThrow(/S3_ENDPOINT/);
  });
});
