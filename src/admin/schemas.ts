import { COLUMN_CHARS, USER_NAME_MAX } from "../ids/identifiers.js";
import { ADMIN_COLUMN_CHARS } from "../storage/ports.js";

/**
 * The Server API's JSON schemas: each route validates its input and serializes its reply with
 * them, and the OpenAPI document (/admin/openapi.json) is made from the same schemas. Inline,
 * not $ref'd, so the document stands alone.
 */

/** What every failure answers (gate's error handler): the code, a message, details for some codes. */
export const adminErrorSchema = {
  type: "object",
  properties: {
    error: { type: "integer", description: "A code of the error table (README, Error codes)" },
    message: { type: "string" },
    details: { type: "object", additionalProperties: true },
  },
  required: ["error"],
} as const;

/** Response schemas of a route: its own reply, the error reply otherwise. */
export function adminReplies(ok: object): Record<string, object> {
  return { 200: ok, "4xx": adminErrorSchema, "5xx": adminErrorSchema };
}

export const uidSchema = { type: "string", pattern: "^[1-9][0-9]{0,19}$", description: "A user id (decimal)" } as const;
export const groupIdSchema = {
  type: "string",
  pattern: "^[1-9][0-9]{0,19}$",
  description: "A group id (decimal)",
} as const;
export const convIdSchema = {
  type: "string",
  minLength: 3,
  maxLength: COLUMN_CHARS.convId,
  description: 'A conversation id: "p:<uid>:<uid>" or "g:<groupId>"',
} as const;
export const userNameSchema = { type: "string", pattern: `^[A-Za-z0-9_]{3,${USER_NAME_MAX}}$` } as const;
export const banReasonSchema = { type: "string", maxLength: ADMIN_COLUMN_CHARS.banReason } as const;

export function okWith(properties: Record<string, object>, required: string[] = []) {
  return {
    type: "object",
    properties: { error: { type: "integer" }, ...properties },
    required: ["error", ...required],
  } as const;
}

export const okSchema = okWith({});

export const userSchema = {
  type: "object",
  properties: {
    uid: { type: "string" },
    name: { type: "string" },
    email: { type: "string" },
    createdAt: { type: "integer" },
    banned: {
      type: "object",
      properties: { untilMs: { type: "integer" }, reason: { type: "string" } },
      required: ["untilMs", "reason"],
    },
  },
  required: ["uid", "name", "email", "createdAt"],
} as const;

/** A stored message as the chat protocol carries it (uint64 ids as decimal strings). */
export const messageSchema = {
  type: "object",
  properties: {
    convId: { type: "string" },
    msgId: { type: "string" },
    seq: { type: "integer" },
    sender: { type: "string" },
    recipient: { type: "string" },
    clientMsgId: { type: "string" },
    kind: { type: "integer", description: "MessageKind: 1 text, 2 custom, 30 file, 50.. events" },
    text: { type: "string" },
    sentAtMs: { type: "string" },
    custom: {
      type: "object",
      properties: { type: { type: "string" }, payloadJson: { type: "string" } },
      required: ["type", "payloadJson"],
    },
    recalled: { type: "boolean" },
    editCount: { type: "integer" },
    targetSeq: { type: "integer" },
  },
  required: ["convId", "msgId", "seq", "sender", "kind", "text", "sentAtMs"],
} as const;

export const groupSchema = {
  type: "object",
  properties: {
    groupId: { type: "string" },
    convId: { type: "string" },
    name: { type: "string" },
    owner: { type: "string" },
    memberCount: { type: "integer" },
    createdAtMs: { type: "string" },
    dissolved: { type: "boolean" },
  },
  required: ["groupId", "convId", "name", "owner", "memberCount"],
} as const;

export const uidParams = {
  type: "object",
  properties: { uid: uidSchema },
  required: ["uid"],
} as const;

export const groupParams = {
  type: "object",
  properties: { groupId: groupIdSchema },
  required: ["groupId"],
} as const;
