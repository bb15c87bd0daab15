import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { AppError, DetailedError, ErrorCode, errorName, httpStatusOf } from "../errors.js";
import type { Logger } from "../log/logger.js";

/** What a failed request answers: a code from the table and a message safe to show a client. */
function classify(err: unknown): { code: ErrorCode; message: string } {
  if (err instanceof AppError) return { code: err.code, message: errorName(err.code) };
  const e = err as Partial<FastifyError>;
  if (e.validation) return { code: ErrorCode.INVALID_ARGUMENT, message: e.message ?? "invalid request" };
  if (e.statusCode === 413) return { code: ErrorCode.FRAME_TOO_LARGE, message: e.message ?? "body too large" };
  // Fastify's own 4xx (bad JSON, wrong content type, empty body) all mean the request is malformed.
  if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) {
    return { code: ErrorCode.INVALID_ARGUMENT, message: e.message ?? "invalid request" };
  }
  return { code: ErrorCode.INTERNAL, message: "internal error" };
}

/** Every failure becomes `{error, message}` with the code's HTTP status; none escapes as a crash. */
export function errorHandler(log: Logger) {
  return (err: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const { code, message } = classify(err);
    if (code === ErrorCode.INTERNAL) {
      log.error({ err, requestId: request.id, method: request.method, url: request.url }, "gate request failed");
    } else if (code === ErrorCode.UNAVAILABLE) {
      log.warn({ err, requestId: request.id, url: request.url }, "gate dependency unavailable");
    }
    const details = err instanceof DetailedError ? { details: err.details } : {};
    return reply.code(httpStatusOf(code)).send({ error: code, message, ...details });
  };
}

export function notFoundHandler(request: FastifyRequest, reply: FastifyReply) {
  return reply
    .code(httpStatusOf(ErrorCode.NOT_FOUND))
    .send({ error: ErrorCode.NOT_FOUND, message: `no route ${request.method} ${request.url}` });
}
