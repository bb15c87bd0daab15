/** The one error reply every route declares for its 4xx and 5xx answers. */
export const errorReplySchema = {
  $id: "ErrorReply",
  type: "object",
  properties: {
    error: { type: "integer" },
    message: { type: "string" },
  },
  required: ["error"],
} as const;

export const errorReplyRef = { $ref: "ErrorReply#" } as const;

/** Response schemas of a route: its own success reply, the shared error reply otherwise. */
export function replies(ok: object, extra: Record<string, object> = {}): Record<string, object> {
  return { 200: ok, ...extra, "4xx": errorReplyRef, "5xx": errorReplyRef };
}

/** `{error: 0}` and nothing else. */
export const okReplySchema = {
  type: "object",
  properties: { error: { type: "integer" } },
  required: ["error"],
} as const;

/** A verify code as verify makes it: six digits. Anything else is refused before verify is asked. */
export const verifyCodeSchema = { type: "string", pattern: "^[0-9]{6}$" } as const;
