import { COLUMN_CHARS, USER_NAME_MAX } from "../ids/identifiers.js";

/** The one error reply every route declares for its 4xx and 5xx answers. */
export const errorReplySchema = {
  $id: "ErrorReply",
  type: "object",
  properties: {
    error: { type: "integer" },
    message: { type: "string" },
    /** Fields some codes carry (ACCOUNT_BANNED: reason, untilMs). */
    details: { type: "object", additionalProperties: true },
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

/** An email as a body field: bounded like its column, checked properly (isValidEmail) after. */
export const emailSchema = { type: "string", minLength: 1, maxLength: COLUMN_CHARS.email } as const;

/** A user name as register makes it; a login name longer than any registered one is refused. */
export const userNameSchema = { type: "string", minLength: 1, maxLength: USER_NAME_MAX } as const;

/** A password of min..max characters (PASSWORD_MIN_LENGTH for new ones, 1 for a login). */
export function passwordSchema(min: number, max: number) {
  return { type: "string", minLength: min, maxLength: max } as const;
}

/** A verify code as verify makes it: six digits. Anything else is refused before verify is asked. */
export const verifyCodeSchema = { type: "string", pattern: "^[0-9]{6}$" } as const;
