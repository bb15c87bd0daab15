import type { FastifyPluginAsync } from "fastify";
import { AppError, ErrorCode } from "../errors.js";
import type { Uid } from "../ids/identifiers.js";
import { conversationActor, messageJson } from "./acting.js";
import type { AdminDeps } from "./deps.js";
import { adminReplies, convIdSchema, messageSchema, okWith, uidParams } from "./schemas.js";

/** A count in a query string: digits (gate's validator converts no types), read by countOf. */
const countSchema = { type: "string", pattern: "^[0-9]{1,15}$" } as const;

const pageQuery = (extra: string[] = []) =>
  ({
    type: "object",
    properties: Object.fromEntries(["limit", ...extra].map((name) => [name, countSchema])),
    additionalProperties: false,
  }) as const;

/** A query's count, or `fallback` when absent; a limit is at most `max` (1 at least). */
function countOf(value: string | undefined, fallback: number): number {
  return value === undefined ? fallback : Number(value);
}

function limitOf(value: string | undefined, max: number): number {
  return Math.min(max, Math.max(1, countOf(value, max)));
}

/**
 * Reads: a conversation's history and a user's conversation list (through the chat nodes, as
 * a member reads them), the reports users filed, and the deployment's stats.
 */
export const adminReadRoutes: FastifyPluginAsync<AdminDeps> = async (app, deps) => {
  const { chat, users, config } = deps;
  const max = config.ADMIN_PAGE_MAX;

  app.get<{ Params: { convId: string }; Querystring: { afterSeq?: string; beforeSeq?: string; limit?: string } }>(
    "/admin/v1/conversations/:convId/messages",
    {
      schema: {
        summary:
          "A page of a conversation's history: afterSeq for ascending from there, else descending before beforeSeq (0: from the newest)",
        tags: ["reads"],
        params: { type: "object", properties: { convId: convIdSchema }, required: ["convId"] },
        querystring: pageQuery(["afterSeq", "beforeSeq"]),
        response: adminReplies(
          okWith({ messages: { type: "array", items: messageSchema }, firstSeq: { type: "integer" } }, ["messages"]),
        ),
      },
    },
    async (request) => {
      const { convId } = request.params;
      const afterSeq = countOf(request.query.afterSeq, 0);
      const beforeSeq = countOf(request.query.beforeSeq, 0);
      const limit = limitOf(request.query.limit, max);
      const reader = await conversationActor(deps, convId);
      const page = await chat.act(
        reader,
        { $case: "historyReq", value: { convId, afterSeq, beforeSeq, limit } },
        "historyResp",
        { requestId: request.id },
      );
      return {
        error: ErrorCode.OK,
        messages: page.messages.map(messageJson),
        ...(page.firstSeq !== undefined ? { firstSeq: page.firstSeq } : {}),
      };
    },
  );

  app.get<{ Params: { uid: Uid }; Querystring: { limit?: string } }>(
    "/admin/v1/users/:uid/conversations",
    {
      schema: {
        summary: "A user's conversation list, the most recently active first",
        tags: ["reads"],
        params: uidParams,
        querystring: pageQuery(),
        response: adminReplies(
          okWith(
            {
              conversations: {
                type: "array",
                items: {
                  type: "object",
                  properties: {
                    convId: { type: "string" },
                    peerUid: { type: "string" },
                    lastSeq: { type: "integer" },
                    readSeq: { type: "integer" },
                    unread: { type: "integer" },
                    lastMessage: messageSchema,
                  },
                  required: ["convId", "lastSeq", "readSeq", "unread"],
                },
              },
            },
            ["conversations"],
          ),
        ),
      },
    },
    async (request) => {
      const { uid } = request.params;
      if (!(await users.byUid(uid))) throw new AppError(ErrorCode.NOT_FOUND, `no user ${uid}`);
      const list = await chat.act(
        uid,
        { $case: "conversationListReq", value: { limit: limitOf(request.query.limit, max) } },
        "conversationListResp",
        { requestId: request.id },
      );
      return {
        error: ErrorCode.OK,
        conversations: list.conversations.map((c) => ({
          convId: c.convId,
          peerUid: c.peerUid,
          lastSeq: c.lastSeq,
          readSeq: c.readSeq,
          unread: c.unread,
          ...(c.lastMessage ? { lastMessage: messageJson(c.lastMessage) } : {}),
        })),
      };
    },
  );

  app.get<{ Querystring: { beforeMs?: string; limit?: string } }>(
    "/admin/v1/reports",
    {
      schema: {
        summary: "Reports users filed of users and messages, the newest first (beforeMs pages back)",
        tags: ["reads"],
        querystring: pageQuery(["beforeMs"]),
        response: adminReplies(
          okWith(
            {
              reports: {
                type: "array",
                items: {
                  type: "object",
                  properties: {
                    reportId: { type: "string" },
                    reporter: { type: "string" },
                    uid: { type: "string" },
                    convId: { type: "string" },
                    seq: { type: "integer" },
                    snapshot: { type: "string" },
                    reason: { type: "string" },
                    createdAt: { type: "integer" },
                  },
                  required: ["reportId", "reporter", "uid", "reason", "createdAt"],
                },
              },
            },
            ["reports"],
          ),
        ),
      },
    },
    async (request) => ({
      error: ErrorCode.OK,
      reports: await deps.reports.recent(countOf(request.query.beforeMs, 0), limitOf(request.query.limit, max)),
    }),
  );

  app.get(
    "/admin/v1/stats",
    {
      schema: {
        summary: "Online sessions per chat node, messages per second, rows of users and messages per database instance",
        tags: ["stats"],
        response: adminReplies(
          okWith(
            {
              nodes: {
                type: "array",
                items: {
                  type: "object",
                  properties: {
                    nodeId: { type: "string" },
                    sessions: { type: "integer" },
                    messagesIn: { type: "integer" },
                    messagesPerSecond: { type: "number" },
                  },
                  required: ["nodeId", "sessions", "messagesIn", "messagesPerSecond"],
                },
              },
              sessions: { type: "integer" },
              messagesPerSecond: { type: "number" },
              shards: {
                type: "array",
                items: {
                  type: "object",
                  properties: {
                    instance: { type: "string" },
                    users: { type: "integer" },
                    messages: { type: "integer" },
                  },
                  required: ["instance", "users", "messages"],
                },
              },
            },
            ["nodes", "sessions", "messagesPerSecond", "shards"],
          ),
        ),
      },
    },
    async () => {
      const { nodes, shards } = await chat.stats();
      return {
        error: ErrorCode.OK,
        nodes,
        sessions: nodes.reduce((sum, n) => sum + n.sessions, 0),
        messagesPerSecond: nodes.reduce((sum, n) => sum + n.messagesPerSecond, 0),
        shards,
      };
    },
  );
};
