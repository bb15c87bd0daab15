import type { FastifyInstance, FastifyRequest } from "fastify";
import { AppError, ErrorCode } from "../errors.js";
import type { ApiKeyRecord } from "../storage/ports.js";
import type { AdminDeps } from "./deps.js";
import { checkApiKey } from "./keys.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The API key a Server API request was made with (set by requireApiKey). */
    apiKey?: ApiKeyRecord;
  }
}

function bearerOf(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  return header?.startsWith("Bearer ") ? header.slice(7).trim() : undefined;
}

/**
 * Every /admin/v1 route of `app` needs `Authorization: Bearer sk_...` of a valid key
 * (API_KEY_INVALID otherwise), within ADMIN_REQUESTS_PER_MINUTE per key; failed attempts count
 * per client address against the same number, so keys cannot be tried at speed.
 */
export function requireApiKey(app: FastifyInstance, deps: Pick<AdminDeps, "keys" | "limiter" | "config">): void {
  const perMinute = deps.config.ADMIN_REQUESTS_PER_MINUTE;
  async function spend(key: string): Promise<void> {
    const budget = await deps.limiter.hit(key, perMinute, 60);
    if (!budget.allowed) {
      throw new AppError(
        ErrorCode.RATE_LIMITED,
        `over ${perMinute} requests a minute; retry in ${budget.retryAfterSeconds} s`,
      );
    }
  }
  app.addHook("onRequest", async (request) => {
    // The matched route's pattern, not the raw URL (which may spell the path otherwise).
    if (!(request.routeOptions.url ?? request.url).startsWith("/admin/v1/")) return;
    let key: ApiKeyRecord;
    try {
      key = await checkApiKey(deps.keys, bearerOf(request));
    } catch (err) {
      if (err instanceof AppError && err.code === ErrorCode.API_KEY_INVALID) {
        await spend(`admin:bad:${request.ip.length <= 45 ? request.ip : "long"}`);
      }
      throw err;
    }
    await spend(`admin:key:${key.id}`);
    request.apiKey = key;
  });
}
