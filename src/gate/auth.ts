import type { FastifyRequest } from "fastify";
import { AppError, ErrorCode, okOrThrow } from "../errors.js";
import type { Uid } from "../storage/ports.js";
import type { GateDeps } from "./deps.js";

/**
 * The uid of a request carrying a login token: `Authorization: Bearer <token>` with
 * `X-Uid: <uid>`, or `?uid=…&token=…` (for links a browser opens itself). status checks it;
 * TOKEN_INVALID / TOKEN_EXPIRED otherwise.
 */
export async function callerOf(status: GateDeps["status"], request: FastifyRequest): Promise<Uid> {
  const query = (request.query ?? {}) as { uid?: unknown; token?: unknown };
  const token = tokenOf(request);
  const uid = request.headers["x-uid"] ?? query.uid;
  if (typeof token !== "string" || typeof uid !== "string" || !/^\d{1,20}$/.test(uid) || token === "") {
    throw new AppError(ErrorCode.TOKEN_INVALID, "a login token is required (Authorization and X-Uid)");
  }
  okOrThrow(await status.checkToken({ uid, token }));
  return uid;
}

/** The login token a request carries (Authorization: Bearer, else ?token=), unchecked. */
export function tokenOf(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header?.startsWith("Bearer ")) return header.slice(7).trim();
  const query = (request.query ?? {}) as { token?: unknown };
  return typeof query.token === "string" ? query.token : undefined;
}
