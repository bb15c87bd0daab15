import { Server, type Upload } from "@tus/server";
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import { AppError, ErrorCode } from "../../errors.js";
import { thumbnailKey } from "../../files/image-preview.js";
import type { ResumableStore } from "../../files/resumable-store.js";
import { COLUMN_CHARS, isUid } from "../../ids/identifiers.js";
import { sampled } from "../../log/logger.js";
import type { FileMeta, Uid } from "../../storage/ports.js";
import { callerOf } from "../auth.js";
import type { GateConfig, GateDeps, GateFiles } from "../deps.js";
import { errorAnswer } from "../errors.js";
import { declaredDurationMs, uploadAnswer, uploadedFile } from "../file-media.js";
import { baseType, cleanName, isParticipant, typeAllowed, type UploadQuota } from "../file-rules.js";
import type { StorageQuota } from "../storage-quota.js";
import type { UploadSweeper } from "../upload-sweeper.js";

/** Where tus is served: the upload URL of each upload is this path and its file id. */
export const RESUMABLE_UPLOADS_PATH = "/v1/files/tus";

export type ResumableUploadsOptions = Omit<GateFiles, "resumable"> &
  Pick<GateDeps, "status" | "ids" | "log"> & {
    resumable: ResumableStore;
    config: Pick<GateConfig, "GATE_RESUMABLE_MAX_BYTES" | "MEDIA_MAX_DURATION_MS">;
    quota: UploadQuota;
    storage: Pick<StorageQuota, "ensureRoom">;
    /** GATE_FILE_TYPES. */
    allowList: string[];
    /** Removes expired unfinished uploads on each of its rounds. */
    sweeper: Pick<UploadSweeper, "also">;
  };

/** What gate keeps in an upload's tus metadata: what was checked at creation, and whose it is. */
interface UploadClaims {
  uid: Uid;
  convId: string;
  name: string;
  contentType: string;
  durationMs: number;
}

/** A file id as gate makes them (decimal); anything else in an upload URL names no upload. */
const FILE_ID = /^[0-9]{1,20}$/;

/**
 * Resumable uploads with the tus protocol (https://tus.io, `@tus/server`): creation,
 * creation-with-upload, termination and expiration, at POST /v1/files/tus and
 * HEAD/PATCH/DELETE /v1/files/tus/<file id>, each with the login token in headers as every
 * /v1/files route.
 * - Creation takes Upload-Length (no deferred length; at most GATE_RESUMABLE_MAX_BYTES) and
 *   Upload-Metadata `convId`, `filename`, `filetype`, optional `durationMs`, and checks what a
 *   multipart upload checks (participant, type, the daily count and bytes, the declared length
 *   counted now). The upload id is a new file id, kept with the uploader's uid: only they may
 *   continue, read (HEAD) or delete the upload.
 * - The request that finishes the upload stores the file's row and answers what POST /v1/files
 *   answers (200 to a PATCH, 201 to a creation-with-upload), so the client learns id and media.
 *   A finished upload's URL names nothing any more (404): it cannot be finished twice.
 * - An unfinished upload expires GATE_RESUMABLE_EXPIRY_MS after its creation (410); gate's
 *   sweep removes it.
 * Refusals answer `{error, message}` with the code's HTTP status (4xx, which tus clients do not
 * retry); tus's own errors keep their status (409 for a wrong offset, which clients resume from).
 */
export const resumableUploadsRoute: FastifyPluginAsync<ResumableUploadsOptions> = async (app, opts) => {
  const { meta, bytes, messages, status, ids, config, log, quota, storage, allowList, previews, resumable, sweeper } =
    opts;
  /** Each request's caller, checked before tus sees the request. */
  const callers = new WeakMap<object, Uid>();
  const callerOfTus = (req: TusRequest): Uid => {
    const node = req.runtime?.node?.req;
    const uid = node ? callers.get(node) : undefined;
    if (uid === undefined) throw new AppError(ErrorCode.TOKEN_INVALID);
    return uid;
  };
  /** One finishing at a time per upload, so a repeated final request waits for the first. */
  const finishing = new Map<string, Promise<FileMeta>>();

  const tus = new Server({
    path: RESUMABLE_UPLOADS_PATH,
    datastore: resumable.datastore,
    ...(resumable.locker ? { locker: resumable.locker } : {}),
    maxSize: config.GATE_RESUMABLE_MAX_BYTES,
    // Gate answers same-origin clients only, as all its routes: no CORS headers.
    allowedOrigins: [],
    namingFunction: () => resumable.uploadIdOf(ids.next()),
    // Relative, so that it holds behind any proxy: clients resolve it against the creation URL.
    generateUrl: (_req, { path, id }) => `${path}/${resumable.fileIdOf(id)}`,
    getFileIdFromRequest: (_req, lastPath) =>
      lastPath !== undefined && FILE_ID.test(lastPath) ? resumable.uploadIdOf(lastPath) : undefined,
    onIncomingRequest: async (req, uploadId) => {
      if (req.method === "POST") return;
      const upload = await resumable.datastore.getUpload(uploadId).catch(() => null);
      // An unknown upload is tus's own 404 (or 410 once expired).
      if (upload && upload.metadata?.uid !== callerOfTus(req)) {
        throw new AppError(ErrorCode.NOT_PARTICIPANT, "another user's upload");
      }
    },
    onUploadCreate: async (req, upload) => ({ metadata: await admit(callerOfTus(req), upload) }),
    onUploadFinish: async (req, upload) => {
      const fileId = resumable.fileIdOf(upload.id);
      let done = finishing.get(fileId);
      if (!done) {
        done = finish(upload).finally(() => finishing.delete(fileId));
        finishing.set(fileId, done);
      }
      const file = await done;
      return {
        // tus answers a PATCH 204, which has no body; a creation keeps its 201 and Location.
        ...(req.method === "PATCH" ? { status_code: 200 } : {}),
        headers: { "content-type": "application/json; charset=utf-8" },
        body: JSON.stringify(uploadAnswer(file)),
      };
    },
    onResponseError: (req, err) => {
      const { status: statusCode, body } = answerOf(err);
      if (body.error === ErrorCode.INTERNAL || body.error === ErrorCode.UNAVAILABLE) {
        log.error(sampled({ err, method: req.method, url: req.url }), "resumable upload failed");
      }
      return { status_code: statusCode, body: JSON.stringify(body) };
    },
  });
  sweeper.also(() => tus.cleanUpExpiredUploads());

  /** The checks of a creation; the metadata the upload keeps (the client's, cleaned, and the uid). */
  const admit = async (uid: Uid, upload: Upload): Promise<Record<string, string>> => {
    const declared = upload.metadata ?? {};
    if (upload.size === undefined) {
      throw new AppError(ErrorCode.INVALID_ARGUMENT, "Upload-Length is required (no deferred length)");
    }
    const convId = declared.convId ?? "";
    if (convId === "" || convId.length > COLUMN_CHARS.convId) {
      throw new AppError(ErrorCode.INVALID_ARGUMENT, "metadata convId is required");
    }
    if (!(await isParticipant(messages, convId, uid))) throw new AppError(ErrorCode.NOT_PARTICIPANT);
    const contentType = baseType(declared.filetype ?? "");
    if (contentType.length > COLUMN_CHARS.contentType || !typeAllowed(allowList, contentType)) {
      throw new AppError(ErrorCode.FILE_TYPE_NOT_ALLOWED, `${contentType || "no type"} is not accepted`);
    }
    if (upload.size > config.GATE_RESUMABLE_MAX_BYTES) {
      throw new AppError(ErrorCode.FILE_TOO_LARGE, `files are at most ${config.GATE_RESUMABLE_MAX_BYTES} bytes`);
    }
    const durationMs = declaredDurationMs(declared.durationMs ?? undefined, contentType, config.MEDIA_MAX_DURATION_MS);
    // The declared length is all the upload may store.
    await storage.ensureRoom(uid, upload.size);
    await quota.countUpload(uid);
    // Counted now, as a direct upload's: what the upload may store is known at its creation.
    await quota.spendBytes(uid, upload.size);
    // Reserved until it finishes, so uploads started together cannot pass the quota together.
    await meta.startPending(resumable.fileIdOf(upload.id), uid, upload.size, Date.now());
    const claims: UploadClaims = {
      uid,
      convId,
      name: cleanName(declared.filename ?? undefined),
      contentType,
      durationMs,
    };
    // `contentType` is also the key @tus/s3-store makes the object's Content-Type of.
    return { ...claims, durationMs: String(durationMs) };
  };

  /** The file's row for a finished upload (the one already stored, when there is one). */
  const finish = async (upload: Upload): Promise<FileMeta> => {
    const id = resumable.fileIdOf(upload.id);
    const done = await meta.byId(id);
    if (done) return done;
    const claims = claimsOf(upload);
    // The uploader may have left the conversation since the upload started.
    if (!(await isParticipant(messages, claims.convId, claims.uid))) {
      await resumable.discard(upload.id).catch(() => undefined);
      await meta.completePending(id).catch(() => undefined);
      throw new AppError(ErrorCode.NOT_PARTICIPANT);
    }
    await resumable.settle(upload.id, { contentType: claims.contentType });
    const file = await uploadedFile(previews, {
      id,
      owner: claims.uid,
      convId: claims.convId,
      name: claims.name,
      size: upload.size ?? upload.offset,
      contentType: claims.contentType,
      durationMs: claims.durationMs,
    });
    try {
      await meta.create(file);
    } catch (err) {
      const raced = await meta.byId(id).catch(() => null);
      if (raced) return raced;
      // Bytes without metadata can never be served: take them back (and the thumbnail made of them).
      await Promise.all([bytes.delete(id), bytes.delete(thumbnailKey(id))]).catch(() => undefined);
      throw err;
    }
    // Its files row counts it now; should this fail, the sweep drops the reservation later.
    await meta.completePending(id).catch(() => undefined);
    return file;
  };

  // tus reads the raw request body itself: no parser of this plugin's routes touches it.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", (_request, _payload, done) => done(null));
  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    // A browser's preflight carries no token; every other request is checked before tus reads it.
    if (request.method !== "OPTIONS") callers.set(request.raw, await callerOf(status, request));
    reply.hijack();
    await tus.handle(request.raw, reply.raw);
  };
  const methods = ["POST", "HEAD", "PATCH", "DELETE", "OPTIONS"];
  app.route({ method: methods, url: RESUMABLE_UPLOADS_PATH, handler });
  app.route({ method: methods, url: `${RESUMABLE_UPLOADS_PATH}/:id`, handler });
};

/** The request tus's hooks get (srvx's), of which gate reads the Node request. */
type TusRequest = { runtime?: { node?: { req?: object } } };

function claimsOf(upload: Upload): UploadClaims {
  const m = upload.metadata ?? {};
  const uid = m.uid ?? "";
  if (!isUid(uid)) throw new AppError(ErrorCode.INTERNAL, `upload ${upload.id} has no uploader`);
  return {
    uid,
    convId: m.convId ?? "",
    name: m.name ?? "file",
    contentType: m.contentType ?? "application/octet-stream",
    durationMs: Number(m.durationMs ?? 0),
  };
}

/** tus's own errors (`{status_code, body}`) keep their status; gate's get the code's. */
function answerOf(err: unknown): ReturnType<typeof errorAnswer> {
  const tusError = err as { status_code?: unknown; body?: unknown };
  if (!(err instanceof AppError) && typeof tusError?.status_code === "number") {
    const statusCode = tusError.status_code;
    const message = typeof tusError.body === "string" ? tusError.body.trim() : "";
    return { status: statusCode, body: { error: tusErrorCode(statusCode), message } };
  }
  return errorAnswer(err);
}

/** The project's code of a tus error's status. */
function tusErrorCode(statusCode: number): ErrorCode {
  if (statusCode === 404 || statusCode === 410) return ErrorCode.NOT_FOUND;
  if (statusCode === 413) return ErrorCode.FILE_TOO_LARGE;
  if (statusCode >= 500) return ErrorCode.INTERNAL;
  return ErrorCode.INVALID_ARGUMENT;
}
