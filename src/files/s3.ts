import { Readable } from "node:stream";
import {
  AbortMultipartUploadCommand,
  type CompletedPart,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
  S3ServiceException,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { AppError, ErrorCode } from "../errors.js";
import type { ByteRange, DirectTransfers, FileStore, PresignedRequest, StoredObjectInfo } from "./ports.js";

/** Where one deployment's objects are, and how they are written. */
export interface S3Placement {
  bucket: string;
  /** Put before every key, so that one bucket can hold several deployments. */
  keyPrefix: string;
  /** A put of more than this is a multipart upload of parts this large (S3: 5 MiB to 5 GiB). */
  partBytes: number;
}

/** How to reach and sign for the store; `publicEndpoint` is the one clients reach. */
export interface S3Connection {
  region: string;
  /** Undefined: AWS S3 of the region. */
  endpoint?: string;
  publicEndpoint?: string;
  forcePathStyle: boolean;
  /** Undefined: the SDK's default credential chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

/** The SDK client settings of `connection`, sending to `endpoint` (gate's own by default). */
export function s3ClientConfig(connection: S3Connection, endpoint = connection.endpoint): S3ClientConfig {
  return {
    region: connection.region,
    endpoint,
    forcePathStyle: connection.forcePathStyle,
    credentials: connection.credentials,
    // The SDK's default CRC headers are refused or mishandled by several S3-compatible stores,
    // and a presigned PUT would carry the CRC of the empty body it was signed without.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  };
}

/** The S3 store of `placement` over `connection`: one client for gate's requests, one that only signs clients' URLs. */
export function connectS3FileStore(connection: S3Connection, placement: S3Placement): S3FileStore {
  const clientFor = (endpoint: string | undefined) => new S3Client(s3ClientConfig(connection, endpoint));
  return new S3FileStore(
    clientFor(connection.endpoint),
    clientFor(connection.publicEndpoint ?? connection.endpoint),
    placement,
  );
}

/**
 * Files as objects of one bucket of an S3-compatible store. Clients upload and download with
 * presigned URLs (`direct`); what gate stores itself is streamed in parts of `partBytes`, so
 * gate holds one part in memory, never a whole file.
 */
export class S3FileStore implements FileStore {
  readonly direct: DirectTransfers;

  constructor(
    private readonly client: S3Client,
    /** Configured with the endpoint clients reach; it signs, it never sends. */
    private readonly signer: S3Client,
    private readonly placement: S3Placement,
    now: () => number = Date.now,
  ) {
    this.direct = new S3PresignedTransfers(signer, placement.bucket, (key) => this.objectKey(key), now);
  }

  async put(key: string, body: Readable, info: { contentType?: string } = {}): Promise<number> {
    const target = { Bucket: this.placement.bucket, Key: this.objectKey(key) };
    let uploadId: string | undefined;
    const done: CompletedPart[] = [];
    let bytes = 0;
    try {
      for await (const part of partsOf(body, this.placement.partBytes)) {
        bytes += part.bytes.length;
        if (part.last && uploadId === undefined) {
          await storeCall(
            this.client.send(
              new PutObjectCommand({
                ...target,
                Body: part.bytes,
                ContentLength: part.bytes.length,
                ContentType: info.contentType,
              }),
            ),
          );
          return bytes;
        }
        uploadId ??= await this.startMultipart(target, info.contentType);
        const PartNumber = done.length + 1;
        const { ETag } = await storeCall(
          this.client.send(
            new UploadPartCommand({
              ...target,
              UploadId: uploadId,
              PartNumber,
              Body: part.bytes,
              ContentLength: part.bytes.length,
            }),
          ),
        );
        done.push({ ETag, PartNumber });
      }
      await storeCall(
        this.client.send(
          new CompleteMultipartUploadCommand({ ...target, UploadId: uploadId, MultipartUpload: { Parts: done } }),
        ),
      );
      return bytes;
    } catch (err) {
      // An unfinished upload is invisible under its key; aborting frees its parts. Should the
      // abort fail too, a bucket lifecycle rule (AbortIncompleteMultipartUpload) removes them.
      if (uploadId !== undefined) {
        await this.client.send(new AbortMultipartUploadCommand({ ...target, UploadId: uploadId })).catch(() => {});
      }
      throw err;
    }
  }

  async get(key: string, range?: ByteRange): Promise<Readable | null> {
    try {
      const out = await this.client.send(
        new GetObjectCommand({
          Bucket: this.placement.bucket,
          Key: this.objectKey(key),
          Range: range ? `bytes=${range.start}-${range.end}` : undefined,
        }),
      );
      if (!(out.Body instanceof Readable)) throw new Error("the object's body is not a Node stream");
      return out.Body;
    } catch (err) {
      if (isMissing(err)) return null;
      throw unavailable(err);
    }
  }

  async head(key: string): Promise<StoredObjectInfo | null> {
    try {
      const out = await this.client.send(
        new HeadObjectCommand({ Bucket: this.placement.bucket, Key: this.objectKey(key) }),
      );
      return { size: out.ContentLength ?? 0, contentType: out.ContentType };
    } catch (err) {
      if (isMissing(err)) return null;
      throw unavailable(err);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.placement.bucket, Key: this.objectKey(key) }));
    } catch (err) {
      if (!isMissing(err)) throw unavailable(err);
    }
  }

  /** Closes both clients' connections. */
  close(): void {
    this.client.destroy();
    this.signer.destroy();
  }

  private objectKey(key: string): string {
    return `${this.placement.keyPrefix}${key}`;
  }

  private async startMultipart(target: { Bucket: string; Key: string }, contentType: string | undefined) {
    const { UploadId } = await storeCall(
      this.client.send(new CreateMultipartUploadCommand({ ...target, ContentType: contentType })),
    );
    if (!UploadId) throw new AppError(ErrorCode.UNAVAILABLE, "file store: no upload id for a multipart upload");
    return UploadId;
  }
}

/** Presigned URLs signed for the endpoint clients reach. */
class S3PresignedTransfers implements DirectTransfers {
  constructor(
    private readonly signer: S3Client,
    private readonly bucket: string,
    private readonly objectKey: (key: string) => string,
    private readonly now: () => number,
  ) {}

  async uploadUrl(
    key: string,
    request: { contentType: string; size: number; expiresInSeconds: number },
  ): Promise<PresignedRequest> {
    // Taken before signing: the URL lives from its signing time, so this is never later than its end.
    const expiresAtMs = this.now() + request.expiresInSeconds * 1000;
    const command = new PutObjectCommand({
      Bucket: this.bucket,
      Key: this.objectKey(key),
      ContentType: request.contentType,
      ContentLength: request.size,
    });
    // Signed, the two headers bind the client to the type and size gate accepted.
    const url = await getSignedUrl(this.signer, command, {
      expiresIn: request.expiresInSeconds,
      signableHeaders: new Set(["content-type", "content-length"]),
    });
    return {
      url,
      method: "PUT",
      headers: { "content-type": request.contentType, "content-length": String(request.size) },
      expiresAtMs,
    };
  }

  async downloadUrl(
    key: string,
    response: { contentType: string; fileName: string; inline: boolean; expiresInSeconds: number },
  ): Promise<{ url: string; expiresAtMs: number }> {
    const expiresAtMs = this.now() + response.expiresInSeconds * 1000;
    const command = new GetObjectCommand({
      Bucket: this.bucket,
      Key: this.objectKey(key),
      ResponseContentType: response.contentType,
      ResponseContentDisposition: contentDisposition(response.fileName, response.inline),
    });
    const url = await getSignedUrl(this.signer, command, { expiresIn: response.expiresInSeconds });
    return { url, expiresAtMs };
  }
}

/**
 * The stream cut into parts of exactly `size` bytes, then the rest (1 to `size` bytes, or the
 * empty stream's 0) marked last. A part is handed on only once a byte past it has arrived, so
 * the first part alone tells whether one PUT does.
 */
async function* partsOf(body: Readable, size: number): AsyncGenerator<{ bytes: Buffer; last: boolean }> {
  let held: Buffer[] = [];
  let heldBytes = 0;
  for await (const chunk of body) {
    const bytes: Buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string | Uint8Array);
    held.push(bytes);
    heldBytes += bytes.length;
    while (heldBytes > size) {
      const all = Buffer.concat(held, heldBytes);
      yield { bytes: all.subarray(0, size), last: false };
      // A copy, so the part just sent is not kept alive by its remainder.
      held = [Buffer.from(all.subarray(size))];
      heldBytes -= size;
    }
  }
  yield { bytes: Buffer.concat(held, heldBytes), last: true };
}

/** RFC 6266 with RFC 5987's encoding, which leaves none of `'()*` bare. */
function contentDisposition(fileName: string, inline: boolean): string {
  const encoded = encodeURIComponent(fileName).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `${inline ? "inline" : "attachment"}; filename*=UTF-8''${encoded}`;
}

/** GetObject says NoSuchKey; HeadObject, having no body, says NotFound. */
function isMissing(err: unknown): boolean {
  return err instanceof S3ServiceException && (err.name === "NoSuchKey" || err.name === "NotFound");
}

/** A request to the store; its failure is UNAVAILABLE (a failing body stream keeps its own error). */
async function storeCall<T>(request: Promise<T>): Promise<T> {
  try {
    return await request;
  } catch (err) {
    throw unavailable(err);
  }
}

function unavailable(err: unknown): AppError {
  if (err instanceof AppError) return err;
  const name = err instanceof Error ? err.name : "error";
  return new AppError(ErrorCode.UNAVAILABLE, `file store: ${name}: ${(err as Error)?.message ?? String(err)}`);
}
