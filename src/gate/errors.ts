import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { AppError, DetailedError, ErrorCode, errorName, httpStatusOf } from "../errors.js";
import type { Logger } from "../log/logger.js";
import { sampled } from "../log/logger.js";

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

/**
 * What a failed request answers: the code's HTTP status and `{error, message}` (and `details`).
 * errorHandler sends it; a handler that writes its own replies (tus) sends the same.
 */
export function errorAnswer(err: unknown): {
  status: number;
  body: { error: ErrorCode; message: string; details?: Record<string, string | number> };
} {
  const { code, message } = classify(err);
  const details = err instanceof DetailedError ? { details: err.details } : {};
  return { status: httpStatusOf(code), body: { error: code, message, ...details } };
}

/** Every failure becomes `{error, message}` with the code's HTTP status; none escapes as a crash. */
export function errorHandler(log: Logger) {
  return (err: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const { status, body } = errorAnswer(err);
    if (body.error === ErrorCode.INTERNAL) {
      log.error(
        sampled({ err, requestId: request.id, method: request.method, url: request.url }),
        "gate request failed",
      );
    } else if (body.error === ErrorCode.UNAVAILABLE) {
      log.warn(sampled({ err, requestId: request.id, url: request.url }), "gate dependency unavailable");
    }
    return reply.code(status).send(body);
  };
}

export function notFoundHandler(request: FastifyRequest, reply: FastifyReply) {
  return reply
    .code(httpStatusOf(ErrorCode.NOT_FOUND))
    .send({ error: ErrorCode.NOT_FOUND, message: `no route ${request.method} ${request.url}` });
}
