import { randomUUID } from "node:crypto";
import type { FastifyPluginAsync } from "fastify";
import { MessageKind } from "../../packages/protocol/src/wire.js";
import { AppError, ErrorCode } from "../errors.js";
import type { Uid } from "../ids/identifiers.js";
import { conversationActor } from "./acting.js";
import type { AdminDeps } from "./deps.js";
import { adminReplies, convIdSchema, groupIdSchema, okWith, uidSchema } from "./schemas.js";

interface SendBody {
  from: Uid;
  toUid?: Uid;
  groupId?: string;
  text?: string;
  custom?: { type: string; payloadJson: string };
  clientMsgId?: string;
}

const sentSchema = okWith(
  {
    convId: { type: "string" },
    msgId: { type: "string" },
    seq: { type: "integer" },
    sentAtMs: { type: "string" },
    clientMsgId: { type: "string" },
    duplicate: { type: "boolean" },
  },
  ["convId", "msgId", "seq", "sentAtMs", "clientMsgId", "duplicate"],
);

/**
 * Messages: send as a user (a person, or a "system account": a user the operator made for it)
 * to a user or a group; recall any message. Each runs on the chat node of the acting user, as
 * a client's request would, so online recipients get it pushed at once.
 */
export const adminMessageRoutes: FastifyPluginAsync<AdminDeps> = async (app, deps) => {
  const { chat, users } = deps;

  app.post<{ Body: SendBody }>(
    "/admin/v1/messages",
    {
      schema: {
        summary: "Send a message as a user, to a user (toUid) or a group (groupId): text or custom content",
        tags: ["messages"],
        body: {
          type: "object",
          properties: {
            from: uidSchema,
            toUid: uidSchema,
            groupId: groupIdSchema,
            text: { type: "string", maxLength: 100_000 },
            custom: {
              type: "object",
              properties: { type: { type: "string", minLength: 1, maxLength: 200 }, payloadJson: { type: "string" } },
              required: ["type", "payloadJson"],
              additionalProperties: false,
            },
            clientMsgId: {
              type: "string",
              minLength: 1,
              maxLength: 64,
              description: "Makes a retry safe: the same id again answers the stored message (duplicate)",
            },
          },
          required: ["from"],
          oneOf: [{ required: ["toUid"] }, { required: ["groupId"] }],
          additionalProperties: false,
        },
        response: adminReplies(sentSchema),
      },
    },
    async (request) => {
      const { from, toUid, groupId, text, custom } = request.body;
      if (text === undefined && custom === undefined) {
        throw new AppError(ErrorCode.INVALID_ARGUMENT, "text or custom is required");
      }
      if (!(await users.byUid(from))) throw new AppError(ErrorCode.NOT_FOUND, `no user ${from}`);
      const content = {
        clientMsgId: request.body.clientMsgId ?? `api-${randomUUID()}`,
        kind: custom ? MessageKind.CUSTOM : MessageKind.TEXT,
        text: text ?? "",
        custom,
      };
      const sent =
        groupId !== undefined
          ? await chat.act(from, { $case: "groupSendReq", value: { groupId, ...content } }, "groupSendResp", {
              requestId: request.id,
            })
          : await chat.act(from, { $case: "sendReq", value: { toUid: toUid as Uid, ...content } }, "sendResp", {
              requestId: request.id,
            });
      return {
        error: ErrorCode.OK,
        convId: sent.convId,
        msgId: sent.msgId,
        seq: sent.seq,
        sentAtMs: sent.sentAtMs,
        clientMsgId: sent.clientMsgId,
        duplicate: sent.duplicate,
      };
    },
  );

  app.post<{ Body: { convId: string; seq: number } }>(
    "/admin/v1/messages/recall",
    {
      schema: {
        summary: "Recall any message, whoever sent it and however long ago; participants are told at once",
        tags: ["messages"],
        body: {
          type: "object",
          properties: { convId: convIdSchema, seq: { type: "integer", minimum: 1 } },
          required: ["convId", "seq"],
          additionalProperties: false,
        },
        response: adminReplies(okWith({ recalled: { type: "boolean" }, eventSeq: { type: "integer" } }, ["recalled"])),
      },
    },
    async (request) => {
      const { convId, seq } = request.body;
      const actor = await conversationActor(deps, convId);
      const outcome = await chat.act(actor, { $case: "recallReq", value: { convId, seq } }, "recallResp", {
        requestId: request.id,
      });
      return {
        error: ErrorCode.OK,
        recalled: outcome.target?.recalled === true,
        ...(outcome.event ? { eventSeq: outcome.event.seq } : {}),
      };
    },
  );
};
