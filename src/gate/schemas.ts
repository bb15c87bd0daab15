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

/** A file gate stored: what an upload answers, through gate or straight to the store. */
export const storedFileReplySchema = {
  type: "object",
  properties: {
    error: { type: "integer" },
    id: { type: "string" },
    url: { type: "string" },
    name: { type: "string" },
    size: { type: "integer" },
    contentType: { type: "string" },
    // An image's dimensions and thumbnail, a recording's length (issue 19); absent for other files.
    media: {
      type: "object",
      properties: {
        width: { type: "integer" },
        height: { type: "integer" },
        durationMs: { type: "integer" },
        thumbnail: {
          type: "object",
          properties: {
            width: { type: "integer" },
            height: { type: "integer" },
            size: { type: "string" },
            contentType: { type: "string" },
          },
          required: ["width", "height", "size", "contentType"],
        },
      },
      required: ["width", "height", "durationMs"],
    },
  },
  required: ["error", "id", "url", "name", "size", "contentType"],
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
