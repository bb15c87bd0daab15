import type { FastifyPluginAsync } from "fastify";
import { AppError, ErrorCode, okOrThrow } from "../../errors.js";
import { callerOf } from "../auth.js";
import type { GateDeps } from "../deps.js";
import { replies } from "../schemas.js";

const nodeReplySchema = {
  type: "object",
  properties: {
    error: { type: "integer" },
    nodeId: { type: "string" },
    host: { type: "string" },
    port: { type: "integer" },
    wsUrl: { type: "string" },
  },
  required: ["error", "nodeId", "host", "port", "wsUrl"],
} as const;

/**
 * GET /v1/node: the chat node that owns the caller now, for a client whose node went away
 * (it keeps its token, so no password is asked again). TOKEN_INVALID / TOKEN_EXPIRED otherwise.
 */
export const nodeRoute: FastifyPluginAsync<Pick<GateDeps, "status">> = async (app, { status }) => {
  app.get("/v1/node", { schema: { response: replies(nodeReplySchema) } }, async (request) => {
    const uid = await callerOf(status, request);
    const { node } = okOrThrow(await status.getChatNode({ uid }));
    if (!node) throw new AppError(ErrorCode.NO_CHAT_NODE);
    return { error: ErrorCode.OK, nodeId: node.nodeId, host: node.host, port: node.tcpPort, wsUrl: node.wsUrl };
  });
};
