import type { MultipartFile } from "@fastify/multipart";
import multipart from "@fastify/multipart";
import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import { AppError, ErrorCode } from "../../errors.js";
import { thumbnailKey } from "../../files/image-preview.js";
import { COLUMN_CHARS } from "../../ids/identifiers.js";
import { sampled } from "../../log/logger.js";
import { callerOf } from "../auth.js";
import { answerToRange, contentRange, unsatisfiedRange } from "../byte-ranges.js";
import type { GateDeps, GateFiles } from "../deps.js";
import type { FileLinks, FileVariant } from "../file-links.js";
import { declaredDurationMs, uploadAnswer, uploadedFile } from "../file-media.js";
import { allowedTypes, cleanName, isParticipant, shownInline, typeAllowed, UploadQuota } from "../file-rules.js";
import { replies, storedFileReplySchema } from "../schemas.js";
import { StorageQuota } from "../storage-quota.js";
import { UploadSweeper } from "../upload-sweeper.js";
import type { UploadTickets } from "../upload-tickets.js";
import { directUploadsRoute } from "./direct-uploads.js";
import { resumableUploadsRoute } from "./resumable-uploads.js";

export type FilesRouteOptions = GateFiles &
  Pick<GateDeps, "status" | "ids" | "config" | "log" | "limiter"> & { links: FileLinks; tickets: UploadTickets };

const linkQuerySchema = {
  type: "object",
  properties: { variant: { type: "string", enum: ["original", "thumbnail"] } },
} as const;

const linkReplySchema = {
  type: "object",
  properties: { error: { type: "integer" }, url: { type: "string" }, expiresAtMs: { type: "integer" } },
  required: ["error", "url", "expiresAtMs"],
} as const;

/**
 * POST /v1/files?convId=… (multipart, one part "file") stores a file for a conversation the
 * caller is in; GET /v1/files/:id hands it to any participant of that conversation; both take
 * the login token in headers (`Authorization: Bearer <token>`, `X-Uid: <uid>`). For what a
 * browser fetches itself (`<img src>`, a download link), POST /v1/files/:id/link answers a link
 * signed for that file alone, valid GATE_FILE_LINK_TTL_MS; the token in a URL is refused. With
 * an object store that presigns (FileStore.direct), the link is the store's own presigned URL
 * instead (FILE_URL_TTL_SECONDS), so downloads never pass through gate, and uploads may skip
 * gate too (./direct-uploads.ts). GET serves one byte range (206) when asked.
 */
export const filesRoute: FastifyPluginAsync<FilesRouteOptions> = async (app, opts) => {
  const { meta, bytes, messages, status, ids, config, log, links, tickets, limiter, previews } = opts;
  const sweeper = new UploadSweeper(meta, bytes, config.GATE_UNSENT_UPLOAD_TTL_MS, log);
  sweeper.start(config.GATE_UPLOAD_SWEEP_INTERVAL_MS);
  app.addHook("onClose", () => sweeper.stop());
  const allowList = allowedTypes(config);
  const quota = new UploadQuota(limiter, config);
  const storage = new StorageQuota(meta, config);
  await app.register(multipart, {
    limits: { fileSize: config.GATE_FILE_MAX_BYTES, files: 1, fields: 4, parts: 5, fieldSize: 1024 },
  });

  const caller = (request: FastifyRequest) => callerOf(status, request);
  await app.register(directUploadsRoute, {
    meta,
    bytes,
    messages,
    status,
    ids,
    config,
    tickets,
    quota,
    storage,
    allowList,
    ...(previews ? { previews } : {}),
  });
  if (opts.resumable) {
    const { resumable } = opts;
    await app.register(resumableUploadsRoute, { ...opts, resumable, quota, storage, allowList, sweeper });
  }

  app.post("/v1/files", { schema: { response: replies(storedFileReplySchema) } }, async (request) => {
    const uid = await caller(request);
    const convId = (request.query as { convId?: unknown }).convId;
    if (typeof convId !== "string" || convId === "" || convId.length > COLUMN_CHARS.convId) {
      throw new AppError(ErrorCode.INVALID_ARGUMENT, "convId is required");
    }
    if (!(await isParticipant(messages, convId, uid))) throw new AppError(ErrorCode.NOT_PARTICIPANT);
    if (!request.isMultipart()) throw new AppError(ErrorCode.FILE_MISSING, "expected multipart/form-data");
    // The declared Content-Length says little of the file's size: a full quota refuses now,
    // and the size is checked again once the bytes are stored.
    await storage.ensureRoom(uid, 1);
    await quota.countUpload(uid);

    let file: MultipartFile | undefined;
    try {
      file = await request.file();
    } catch (err) {
      throw new AppError(ErrorCode.INVALID_ARGUMENT, `bad multipart body: ${(err as Error).message}`);
    }
    if (!file) throw new AppError(ErrorCode.FILE_MISSING);
    const contentType = file.mimetype.split(";")[0]?.trim().toLowerCase() ?? "";
    if (!typeAllowed(allowList, contentType)) {
      file.file.resume();
      throw new AppError(ErrorCode.FILE_TYPE_NOT_ALLOWED, `${contentType || "no type"} is not accepted`);
    }
    const durationMs = declaredDurationMs(
      (request.query as { durationMs?: unknown }).durationMs,
      contentType,
      config.MEDIA_MAX_DURATION_MS,
    );
    const id = ids.next();
    let size: number;
    try {
      size = await bytes.put(id, file.file, { contentType });
    } catch (err) {
      if ((err as { code?: string }).code === "FST_REQ_FILE_TOO_LARGE" || file.file.truncated) {
        throw new AppError(ErrorCode.FILE_TOO_LARGE, `files are at most ${config.GATE_FILE_MAX_BYTES} bytes`);
      }
      log.error(sampled({ err }), "file store put failed");
      throw new AppError(ErrorCode.UNAVAILABLE, "file store");
    }
    if (file.file.truncated) {
      await bytes.delete(id);
      throw new AppError(ErrorCode.FILE_TOO_LARGE, `files are at most ${config.GATE_FILE_MAX_BYTES} bytes`);
    }
    // Counted once the size is known; a refused upload is dropped and spends nothing.
    try {
      await storage.ensureRoom(uid, size);
      await quota.spendBytes(uid, size);
    } catch (err) {
      await bytes.delete(id).catch(() => {});
      throw err;
    }
    const name = cleanName(file.filename);
    const stored = await uploadedFile(previews, { id, owner: uid, convId, name, size, contentType, durationMs });
    try {
      await meta.create(stored);
    } catch (err) {
      // Bytes without metadata can never be served: take them back (and the thumbnail made of them).
      await Promise.all([bytes.delete(id), bytes.delete(thumbnailKey(id))]).catch(() => {});
      throw err;
    }
    return uploadAnswer(stored);
  });

  const existing = async (id: string) => {
    const found = await meta.byId(id);
    if (!found) throw new AppError(ErrorCode.NOT_FOUND, "no such file");
    return found;
  };
  /**
   * The file, if the caller (by headers) takes part in its conversation, or in one it was
   * forwarded into (each such conversation asked in turn, the upload's own first).
   */
  const fileFor = async (request: FastifyRequest, id: string) => {
    const uid = await caller(request);
    const found = await existing(id);
    for (const convId of [found.convId, ...(found.sharedWith ?? [])]) {
      if (await isParticipant(messages, convId, uid)) return found;
    }
    throw new AppError(ErrorCode.NOT_PARTICIPANT);
  };

  app.post<{ Params: { id: string }; Querystring: { variant?: FileVariant } }>(
    "/v1/files/:id/link",
    { schema: { querystring: linkQuerySchema, response: replies(linkReplySchema) } },
    async (request) => {
      const found = await fileFor(request, request.params.id);
      if (request.query.variant === "thumbnail") {
        const thumbnail = found.media?.thumbnail;
        if (!thumbnail) throw new AppError(ErrorCode.NOT_FOUND, "this file has no thumbnail");
        if (bytes.direct) {
          const { url, expiresAtMs } = await bytes.direct.downloadUrl(thumbnailKey(found.id), {
            contentType: thumbnail.contentType,
            fileName: `${found.name}.webp`,
            inline: true,
            expiresInSeconds: config.FILE_URL_TTL_SECONDS,
          });
          return { error: ErrorCode.OK, url, expiresAtMs };
        }
        const { path, expiresAtMs } = links.sign(found.id, "thumbnail");
        return { error: ErrorCode.OK, url: path, expiresAtMs };
      }
      if (bytes.direct) {
        const { url, expiresAtMs } = await bytes.direct.downloadUrl(found.id, {
          contentType: found.contentType,
          fileName: found.name,
          inline: shownInline(found.contentType),
          expiresInSeconds: config.FILE_URL_TTL_SECONDS,
        });
        return { error: ErrorCode.OK, url, expiresAtMs };
      }
      const { path, expiresAtMs } = links.sign(found.id);
      return { error: ErrorCode.OK, url: path, expiresAtMs };
    },
  );

  /** The file a GET names, opened by a signed link for that variant or by the login token in headers. */
  const opened = async (request: FastifyRequest<{ Params: { id: string } }>, variant: FileVariant) => {
    const query = (request.query ?? {}) as { sig?: unknown; exp?: unknown; token?: unknown };
    if (query.token !== undefined) {
      throw new AppError(
        ErrorCode.TOKEN_INVALID,
        "the login token is not accepted in a URL (logs keep it); ask POST /v1/files/:id/link for a signed link",
      );
    }
    if (query.sig === undefined) return fileFor(request, request.params.id);
    const verdict = links.check(request.params.id, query.exp, query.sig, variant);
    if (verdict === "expired") throw new AppError(ErrorCode.TOKEN_EXPIRED, "this file link has expired");
    if (verdict === "invalid") throw new AppError(ErrorCode.TOKEN_INVALID, "this file link is not valid");
    return existing(request.params.id);
  };

  // An image's thumbnail (issue 19): a small WebP gate made on upload, shown before the original is fetched.
  app.get<{ Params: { id: string } }>("/v1/files/:id/thumbnail", async (request, reply) => {
    const found = await opened(request, "thumbnail");
    const thumbnail = found.media?.thumbnail;
    if (!thumbnail) throw new AppError(ErrorCode.NOT_FOUND, "this file has no thumbnail");
    const body = await bytes.get(thumbnailKey(found.id));
    if (!body) throw new AppError(ErrorCode.NOT_FOUND, "thumbnail bytes are gone");
    return reply
      .header("content-type", thumbnail.contentType)
      .header("content-length", thumbnail.size)
      .header("x-content-type-options", "nosniff")
      .header("content-security-policy", "sandbox")
      .header("cache-control", "private, max-age=86400")
      .header("content-disposition", "inline")
      .send(body);
  });

  app.get<{ Params: { id: string } }>("/v1/files/:id", async (request, reply) => {
    const found = await opened(request, "original");
    reply.header("accept-ranges", "bytes");
    const wanted = answerToRange(request.headers, found.size);
    if (wanted.kind === "unsatisfiable") {
      return reply
        .code(416)
        .header("content-range", unsatisfiedRange(found.size))
        .send({ error: ErrorCode.INVALID_ARGUMENT, message: `no byte of the range is within the ${found.size} bytes` });
    }
    const part = wanted.kind === "part" ? wanted.range : undefined;
    const body = await bytes.get(found.id, part);
    if (!body) throw new AppError(ErrorCode.NOT_FOUND, "file bytes are gone");
    if (part) reply.code(206).header("content-range", contentRange(part, found.size));
    const inline = shownInline(found.contentType);
    return reply
      .header("content-type", found.contentType)
      .header("content-length", part ? part.end - part.start + 1 : found.size)
      .header("x-content-type-options", "nosniff")
      .header("content-security-policy", "sandbox")
      .header("cache-control", "private, max-age=86400")
      .header(
        "content-disposition",
        `${inline ? "inline" : "attachment"}; filename*=UTF-8''${encodeURIComponent(found.name)}`,
      )
      .send(body);
  });
};
