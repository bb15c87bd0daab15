import type { FastifyPluginAsync } from "fastify";
import { AppError, ErrorCode, okOrThrow } from "../../errors.js";
import type { UserRecord } from "../../storage/ports.js";
import { normalizeEmail } from "../../verify/email.js";
import type { GateDeps } from "../deps.js";
import { verifyPassword } from "../password.js";
import { replies } from "../schemas.js";

interface LoginBody {
  email?: string;
  user?: string;
  password: string;
}

const bodySchema = {
  type: "object",
  properties: {
    email: { type: "string" },
    user: { type: "string" },
    password: { type: "string", minLength: 1 },
  },
  required: ["password"],
  anyOf: [{ required: ["email"] }, { required: ["user"] }],
} as const;

const loginReplySchema = {
  type: "object",
  properties: {
    error: { type: "integer" },
    uid: { type: "string" },
    token: { type: "string" },
    expiresAtMs: { type: "integer" },
    nodeId: { type: "string" },
    host: { type: "string" },
    port: { type: "integer" },
    wsUrl: { type: "string" },
  },
  required: ["error", "uid", "token", "expiresAtMs", "nodeId", "host", "port", "wsUrl"],
} as const;

export interface LoginRouteOptions extends Pick<GateDeps, "users" | "status"> {
  /** A hash of nothing, checked when the user does not exist so that case costs the same scrypt work. */
  dummyHash: string;
}

export const loginRoute: FastifyPluginAsync<LoginRouteOptions> = async (app, { users, status, dummyHash }) => {
  app.post<{ Body: LoginBody }>(
    "/v1/login",
    { schema: { body: bodySchema, response: replies(loginReplySchema) } },
    async (request) => {
      const { email, user: name, password } = request.body;
      const user: UserRecord | null =
        email !== undefined ? await users.byEmail(normalizeEmail(email)) : await users.byName(name ?? "");
      const passwordOk = await verifyPassword(password, user?.passwordHash ?? dummyHash);
      if (!user || !passwordOk) throw new AppError(ErrorCode.BAD_CREDENTIALS);

      const { node } = okOrThrow(await status.getChatNode({ uid: user.uid }));
      if (!node) throw new AppError(ErrorCode.NO_CHAT_NODE);
      const token = okOrThrow(await status.issueToken({ uid: user.uid }));
      return {
        error: ErrorCode.OK,
        uid: user.uid,
        token: token.token,
        expiresAtMs: Number(token.expiresAtMs),
        nodeId: node.nodeId,
        host: node.host,
        port: node.tcpPort,
        wsUrl: node.wsUrl,
      };
    },
  );
};
