import type { FastifyPluginAsync } from "fastify";
import { AppError, ErrorCode } from "../../errors.js";
import { COLUMN_CHARS } from "../../ids/identifiers.js";
import { callerOf } from "../auth.js";
import type { GateConfig, GateDeps, GateFiles } from "../deps.js";
import { declaredDurationMs, uploadAnswer, uploadedFile } from "../file-media.js";
import { baseType, cleanName, isParticipant, typeAllowed, type UploadQuota } from "../file-rules.js";
import { replies, storedFileReplySchema } from "../schemas.js";
import type { StorageQuota } from "../storage-quota.js";
import type { UploadTickets } from "../upload-tickets.js";

export type DirectUploadsOptions = GateFiles &
  Pick<GateDeps, "status" | "ids"> & {
    config: Pick<GateConfig, "GATE_FILE_MAX_BYTES" | "FILE_URL_TTL_SECONDS" | "MEDIA_MAX_DURATION_MS">;
    tickets: UploadTickets;
    quota: UploadQuota;
    storage: StorageQuota;
    /** GATE_FILE_TYPES. */
    allowList: string[];
  };

const startBodySchema = {
  type: "object",
  properties: {
    convId: { type: "string", minLength: 1, maxLength: COLUMN_CHARS.convId },
    // Cleaned and cut to its column as a multipart upload's name is; the body limit bounds it.
    name: { type: "string" },
    // Bounded by GATE_FILE_MAX_BYTES with FILE_TOO_LARGE, as a multipart upload is.
    size: { type: "integer", minimum: 0 },
    contentType: { type: "string", minLength: 1, maxLength: COLUMN_CHARS.contentType },
    // A recording's length (a voice message), up to MEDIA_MAX_DURATION_MS.
    durationMs: { type: "integer", minimum: 0 },
  },
  required: ["convId", "name", "size", "contentType"],
  additionalProperties: false,
} as const;

const startReplySchema = {
  type: "object",
  properties: {
    error: { type: "integer" },
    id: { type: "string" },
    upload: {
      type: "object",
      properties: {
        url: { type: "string" },
        method: { type: "string" },
        headers: { type: "object", additionalProperties: { type: "string" } },
        expiresAtMs: { type: "integer" },
      },
      required: ["url", "method", "headers", "expiresAtMs"],
    },
    ticket: { type: "string" },
  },
  required: ["error", "id", "upload", "ticket"],
} as const;

const completeBodySchema = {
  type: "object",
  properties: { ticket: { type: "string", minLength: 1 } },
  required: ["ticket"],
  additionalProperties: false,
} as const;

/**
 * Uploads whose bytes go from the client straight to the object store (FileStore.direct), with
 * the login token in headers as every /v1/files route:
 * - POST /v1/files/uploads `{convId, name, size, contentType, durationMs?}` checks what a multipart upload
 *   checks (participant, type, GATE_FILE_MAX_BYTES, GATE_USER_STORAGE_MAX_BYTES, the daily count
 *   and bytes; the bytes are the declared size, counted now), records the upload as pending (the
 *   sweep deletes its object if it is never completed) and answers `{id, upload: {url, method, headers,
 *   expiresAtMs}, ticket}`: a presigned PUT of exactly those bytes, and a signed ticket of what
 *   was checked.
 * - The client PUTs the bytes to upload.url with upload.headers.
 * - POST /v1/files/:id/complete `{ticket}` finds the object as declared and stores the file's
 *   row; it answers what POST /v1/files answers, the same file again when repeated.
 * A store without presigned URLs (local disk) answers DIRECT_UPLOAD_UNAVAILABLE: upload through
 * POST /v1/files then.
 */
export const directUploadsRoute: FastifyPluginAsync<DirectUploadsOptions> = async (app, opts) => {
  const { meta, bytes, messages, status, ids, config, tickets, quota, storage, allowList, previews } = opts;
  const directTransfers = () => {
    if (!bytes.direct) {
      throw new AppError(
        ErrorCode.DIRECT_UPLOAD_UNAVAILABLE,
        "this gate stores files itself: upload with POST /v1/files (multipart)",
      );
    }
    return bytes.direct;
  };

  app.post<{ Body: { convId: string; name: string; size: number; contentType: string; durationMs?: number } }>(
    "/v1/files/uploads",
    { schema: { body: startBodySchema, response: replies(startReplySchema) } },
    async (request) => {
      const uid = await callerOf(status, request);
      const direct = directTransfers();
      const { convId, size } = request.body;
      if (!(await isParticipant(messages, convId, uid))) throw new AppError(ErrorCode.NOT_PARTICIPANT);
      const contentType = baseType(request.body.contentType);
      if (!typeAllowed(allowList, contentType)) {
        throw new AppError(ErrorCode.FILE_TYPE_NOT_ALLOWED, `${contentType} is not accepted`);
      }
      if (size > config.GATE_FILE_MAX_BYTES) {
        throw new AppError(ErrorCode.FILE_TOO_LARGE, `files are at most ${config.GATE_FILE_MAX_BYTES} bytes`);
      }
      const durationMs = declaredDurationMs(request.body.durationMs, contentType, config.MEDIA_MAX_DURATION_MS);
      // The declared size is all the store will take (the presigned PUT is signed for it).
      await storage.ensureRoom(uid, size);
      await quota.countUpload(uid);
      // The presigned PUT stores exactly `size` bytes or none: what a multipart upload counts
      // once it has them is known now.
      await quota.spendBytes(uid, size);
      const id = ids.next();
      const name = cleanName(request.body.name);
      // Recorded before the client can PUT: an upload never completed is found by the sweep.
      await meta.startPending(id, uid, size, Date.now());
      const upload = await direct.uploadUrl(id, { contentType, size, expiresInSeconds: config.FILE_URL_TTL_SECONDS });
      const { ticket } = tickets.issue({ id, uid, convId, name, size, contentType, durationMs });
      return { error: ErrorCode.OK, id, upload, ticket };
    },
  );

  app.post<{ Params: { id: string }; Body: { ticket: string } }>(
    "/v1/files/:id/complete",
    { schema: { body: completeBodySchema, response: replies(storedFileReplySchema) } },
    async (request) => {
      const uid = await callerOf(status, request);
      directTransfers();
      const verdict = tickets.check(request.body.ticket);
      if (verdict === "invalid" || verdict.claims.id !== request.params.id) {
        throw new AppError(ErrorCode.INVALID_ARGUMENT, "not an upload ticket of this file");
      }
      const { claims } = verdict;
      if (claims.uid !== uid) throw new AppError(ErrorCode.NOT_PARTICIPANT, "another user's upload");
      const done = await meta.byId(claims.id);
      if (done) return uploadAnswer(done);
      // Whatever is under the id now can never be completed: removed now rather than by the sweep.
      const drop = () =>
        bytes
          .delete(claims.id)
          .then(() => meta.completePending(claims.id))
          .catch(() => {});
      if (verdict.expired) {
        await drop();
        throw new AppError(ErrorCode.INVALID_ARGUMENT, "this upload ticket has expired: start the upload again");
      }
      // The caller may have left the conversation since the upload started.
      if (!(await isParticipant(messages, claims.convId, uid))) {
        await drop();
        throw new AppError(ErrorCode.NOT_PARTICIPANT);
      }
      const stored = await bytes.head(claims.id);
      if (!stored) throw new AppError(ErrorCode.FILE_MISSING, "nothing was uploaded for this id");
      const typeDiffers = stored.contentType !== undefined && baseType(stored.contentType) !== claims.contentType;
      if (stored.size !== claims.size || typeDiffers) {
        await drop();
        throw new AppError(
          ErrorCode.INVALID_ARGUMENT,
          `stored ${stored.size} bytes of ${stored.contentType ?? "no type"}; the upload declared ${claims.size} of ${claims.contentType}`,
        );
      }
      const { id, convId, name, size, contentType } = claims;
      const file = await uploadedFile(previews, {
        id,
        owner: uid,
        convId,
        name,
        size,
        contentType,
        durationMs: claims.durationMs ?? 0,
      });
      try {
        await meta.create(file);
      } catch (err) {
        // Another completion of the same ticket stored the row first.
        const raced = await meta.byId(claims.id).catch(() => null);
        if (raced) return uploadAnswer(raced);
        throw err;
      }
      // Not pending any more; should this fail, the sweep finds the files row and keeps the object.
      await meta.completePending(id).catch(() => {});
      return uploadAnswer(file);
    },
  );
};
