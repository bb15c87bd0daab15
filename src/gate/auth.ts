import type { FastifyRequest } from "fastify";
import { AppError, ErrorCode, okOrThrow } from "../errors.js";
import { isUid } from "../ids/identifiers.js";
import type { Uid } from "../storage/ports.js";
import type { GateDeps } from "./deps.js";

/**
 * The uid of a request carrying a login token: `Authorization: Bearer <token>` with
 * `X-Uid: <uid>`; status checks it; TOKEN_INVALID / TOKEN_EXPIRED otherwise. Never from the
 * URL: a token there lands in access logs and history (file links are signed instead).
 */
export async function callerOf(status: GateDeps["status"], request: FastifyRequest): Promise<Uid> {
  const token = tokenOf(request);
  const uid = request.headers["x-uid"];
  if (typeof token !== "string" || typeof uid !== "string" || !isUid(uid) || token === "") {
    throw new AppError(ErrorCode.TOKEN_INVALID, "a login token is required (Authorization and X-Uid)");
  }
  okOrThrow(await status.checkToken({ uid, token }));
  return uid;
}

/** The login token a request carries (Authorization: Bearer), unchecked. */
export function tokenOf(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  return header?.startsWith("Bearer ") ? header.slice(7).trim() : undefined;
}
