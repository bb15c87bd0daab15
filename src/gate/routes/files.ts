import type { MultipartFile } from "@fastify/multipart";
import multipart from "@fastify/multipart";
import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import { AppError, ErrorCode } from "../../errors.js";
import { COLUMN_CHARS, directConvMembers } from "../../ids/identifiers.js";
import type { Uid } from "../../storage/ports.js";
import { callerOf } from "../auth.js";
import type { GateDeps, GateFiles } from "../deps.js";
import type { FileLinks } from "../file-links.js";
import { replies } from "../schemas.js";
import { UploadSweeper } from "../upload-sweeper.js";

export type FilesRouteOptions = GateFiles &
  Pick<GateDeps, "status" | "ids" | "config" | "log" | "limiter"> & { links: FileLinks };

const linkReplySchema = {
  type: "object",
  properties: { error: { type: "integer" }, url: { type: "string" }, expiresAtMs: { type: "integer" } },
  required: ["error", "url", "expiresAtMs"],
} as const;

const uploadReplySchema = {
  type: "object",
  properties: {
    error: { type: "integer" },
    id: { type: "string" },
    url: { type: "string" },
    name: { type: "string" },
    size: { type: "integer" },
    contentType: { type: "string" },
  },
  required: ["error", "id", "url", "name", "size", "contentType"],
} as const;

/** "image/png" is allowed by "image/png" or "image/*". */
export function typeAllowed(allowList: string[], contentType: string): boolean {
  const type = contentType.split(";")[0]?.trim().toLowerCase() ?? "";
  if (!/^[a-z0-9.+-]+\/[a-z0-9.+-]+$/.test(type)) return false;
  const family = `${type.split("/")[0]}/*`;
  return allowList.includes(type) || allowList.includes(family);
}

/** A file name without any path or control characters, as a download may offer it. */
function cleanName(raw: string | undefined): string {
  const base = (raw ?? "").split(/[\\/]/).pop() ?? "";
  const printable = [...base]
    .filter((c) => c.charCodeAt(0) >= 0x20 && c !== "\u007f" && c !== '"')
    .join("")
    .trim();
  return [...(printable || "file")].slice(0, COLUMN_CHARS.fileName).join("");
}

/**
 * Whether uid takes part in convId: a 1:1 conversation's two users are in its id (it exists
 * before its first message), any other conversation's members are its member rows.
 */
async function isParticipant(messages: GateFiles["messages"], convId: string, uid: Uid): Promise<boolean> {
  const direct = directConvMembers(convId);
  if (direct) return direct.some((member) => BigInt(member) === BigInt(uid));
  return messages.isMember(convId, uid);
}

/**
 * POST /v1/files?convId=… (multipart, one part "file") stores a file for a conversation the
 * caller is in; GET /v1/files/:id hands it to any participant of that conversation; both take
 * the login token in headers (`Authorization: Bearer <token>`, `X-Uid: <uid>`). For what a
 * browser fetches itself (`<img src>`, a download link), POST /v1/files/:id/link answers a link
 * signed for that file alone, valid GATE_FILE_LINK_TTL_MS; the token in a URL is refused.
 */
export const filesRoute: FastifyPluginAsync<FilesRouteOptions> = async (app, opts) => {
  const { meta, bytes, messages, status, ids, config, log, links, limiter } = opts;
  const sweeper = new UploadSweeper(meta, bytes, config.GATE_UNSENT_UPLOAD_TTL_MS, log);
  sweeper.start(config.GATE_UPLOAD_SWEEP_INTERVAL_MS);
  app.addHook("onClose", () => sweeper.stop());
  const allowList = config.GATE_FILE_TYPES.split(",")
    .map((t) => t.trim().toLowerCase())
    .filter(Boolean);
  await app.register(multipart, {
    limits: { fileSize: config.GATE_FILE_MAX_BYTES, files: 1, fields: 4, parts: 5, fieldSize: 1024 },
  });

  const caller = (request: FastifyRequest) => callerOf(status, request);

  app.post("/v1/files", { schema: { response: replies(uploadReplySchema) } }, async (request) => {
    const uid = await caller(request);
    const convId = (request.query as { convId?: unknown }).convId;
    if (typeof convId !== "string" || convId === "" || convId.length > COLUMN_CHARS.convId) {
      throw new AppError(ErrorCode.INVALID_ARGUMENT, "convId is required");
    }
    if (!(await isParticipant(messages, convId, uid))) throw new AppError(ErrorCode.NOT_PARTICIPANT);
    if (!request.isMultipart()) throw new AppError(ErrorCode.FILE_MISSING, "expected multipart/form-data");
    const quota = await limiter.hit(`uploads:${uid}`, config.GATE_UPLOADS_PER_USER_PER_DAY, 86_400);
    if (!quota.allowed) {
      throw new AppError(
        ErrorCode.RATE_LIMITED,
        `at most ${config.GATE_UPLOADS_PER_USER_PER_DAY} uploads a day; retry in ${quota.retryAfterSeconds} s`,
      );
    }

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
    const id = ids.next();
    let size: number;
    try {
      size = await bytes.put(id, file.file);
    } catch (err) {
      if ((err as { code?: string }).code === "FST_REQ_FILE_TOO_LARGE" || file.file.truncated) {
        throw new AppError(ErrorCode.FILE_TOO_LARGE, `files are at most ${config.GATE_FILE_MAX_BYTES} bytes`);
      }
      log.error({ err }, "file store put failed");
      throw new AppError(ErrorCode.UNAVAILABLE, "file store");
    }
    if (file.file.truncated) {
      await bytes.delete(id);
      throw new AppError(ErrorCode.FILE_TOO_LARGE, `files are at most ${config.GATE_FILE_MAX_BYTES} bytes`);
    }
    // Counted once the size is known; a refused upload is dropped and spends nothing.
    const volume = await limiter.hit(
      `upload-bytes:${uid}`,
      config.GATE_UPLOAD_BYTES_PER_USER_PER_DAY,
      86_400,
      Math.max(1, size),
    );
    if (!volume.allowed) {
      await bytes.delete(id).catch(() => {});
      throw new AppError(
        ErrorCode.RATE_LIMITED,
        `at most ${config.GATE_UPLOAD_BYTES_PER_USER_PER_DAY} bytes uploaded a day; retry in ${volume.retryAfterSeconds} s`,
      );
    }
    const name = cleanName(file.filename);
    try {
      await meta.create({ id, owner: uid, convId, name, size, contentType, createdAt: Date.now() });
    } catch (err) {
      // Bytes without metadata can never be served: take them back.
      await bytes.delete(id).catch(() => {});
      throw err;
    }
    return { error: ErrorCode.OK, id, url: `/v1/files/${id}`, name, size, contentType };
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

  app.post<{ Params: { id: string } }>(
    "/v1/files/:id/link",
    { schema: { response: replies(linkReplySchema) } },
    async (request) => {
      const found = await fileFor(request, request.params.id);
      const { path, expiresAtMs } = links.sign(found.id);
      return { error: ErrorCode.OK, url: path, expiresAtMs };
    },
  );

  app.get<{ Params: { id: string } }>("/v1/files/:id", async (request, reply) => {
    const query = (request.query ?? {}) as { sig?: unknown; exp?: unknown; token?: unknown };
    if (query.token !== undefined) {
      throw new AppError(
        ErrorCode.TOKEN_INVALID,
        "the login token is not accepted in a URL (logs keep it); ask POST /v1/files/:id/link for a signed link",
      );
    }
    let found: Awaited<ReturnType<typeof existing>>;
    if (query.sig !== undefined) {
      const verdict = links.check(request.params.id, query.exp, query.sig);
      if (verdict === "expired") throw new AppError(ErrorCode.TOKEN_EXPIRED, "this file link has expired");
      if (verdict === "invalid") throw new AppError(ErrorCode.TOKEN_INVALID, "this file link is not valid");
      found = await existing(request.params.id);
    } else {
      found = await fileFor(request, request.params.id);
    }
    const body = await bytes.get(found.id);
    if (!body) throw new AppError(ErrorCode.NOT_FOUND, "file bytes are gone");
    const inline = found.contentType.startsWith("image/");
    return reply
      .header("content-type", found.contentType)
      .header("content-length", found.size)
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
