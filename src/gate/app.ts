import { randomBytes, randomUUID } from "node:crypto";
import Fastify, { type FastifyInstance } from "fastify";
import { adminApi } from "../admin/plugin.js";
import type { GateDeps } from "./deps.js";
import { errorHandler, notFoundHandler } from "./errors.js";
import { FileLinks, fileLinkKey } from "./file-links.js";
import { hashPassword } from "./password.js";
import { PasswordHasher } from "./password-hasher.js";
import { accountRoute } from "./routes/account.js";
import { filesRoute } from "./routes/files.js";
import { healthzRoute } from "./routes/healthz.js";
import { loginRoute } from "./routes/login.js";
import { logoutRoute } from "./routes/logout.js";
import { nodeRoute } from "./routes/node.js";
import { pushRoute } from "./routes/push.js";
import { registerRoute } from "./routes/register.js";
import { resetPasswordRoute } from "./routes/reset-password.js";
import { verifyCodeRoute } from "./routes/verify-code.js";
import { webRoute } from "./routes/web.js";
import { errorReplySchema } from "./schemas.js";
import { traceRequests } from "./trace-requests.js";
import { UploadTickets } from "./upload-tickets.js";

export type { GateDeps };

/** gate's HTTP app, not yet listening (tests drive it with inject()). */
export async function buildGateApp(deps: GateDeps): Promise<FastifyInstance> {
  const { config, log } = deps;
  const app = Fastify({
    logger: false,
    bodyLimit: config.GATE_BODY_LIMIT_BYTES,
    // Slow or stalled clients cannot hold sockets: a whole request in so long, and no silence longer.
    requestTimeout: config.GATE_REQUEST_TIMEOUT_MS,
    connectionTimeout: config.GATE_IDLE_TIMEOUT_MS,
    trustProxy: config.GATE_TRUST_PROXY,
    // A proxy's id (nginx $request_id) is kept, so one id names the request in every log.
    requestIdHeader: "x-request-id",
    genReqId: () => randomUUID(),
    ajv: {
      // A number where a string belongs is a wrong type, not something to convert.
      customOptions: { coerceTypes: false, allErrors: false },
    },
  });
  // Before any route: the spans' hooks wrap every handler registered after them.
  if (deps.tracing?.enabled) traceRequests(app, deps.tracing);
  app.addSchema(errorReplySchema);
  app.setErrorHandler(errorHandler(log));
  app.setNotFoundHandler(notFoundHandler);
  app.addHook("onSend", async (request, reply) => {
    reply.header("x-request-id", request.id);
  });
  if (deps.metrics) {
    const { requests, requestFailures } = deps.metrics;
    const answered = requests.labels({ protocol: "http" });
    app.addHook("onResponse", async (_request, reply) => {
      answered.inc();
      if (reply.statusCode >= 500) requestFailures.inc({ protocol: "http", code: String(reply.statusCode) });
    });
  }

  // One queue for every scrypt of this gate: logins, registrations and resets share its slots.
  const hasher = new PasswordHasher(config.GATE_HASHES_IN_FLIGHT, config.GATE_HASH_QUEUE_MAX);
  const dummyHash = await hashPassword(randomBytes(16).toString("hex"));
  await app.register(healthzRoute);
  await app.register(verifyCodeRoute, { verify: deps.verify });
  await app.register(registerRoute, { users: deps.users, verify: deps.verify, ids: deps.ids, config, hasher });
  await app.register(resetPasswordRoute, {
    users: deps.users,
    verify: deps.verify,
    status: deps.status,
    config,
    hasher,
  });
  await app.register(logoutRoute, { status: deps.status });
  await app.register(loginRoute, {
    users: deps.users,
    status: deps.status,
    limiter: deps.limiter,
    config,
    hasher,
    dummyHash,
    bans: deps.admin?.bans,
  });
  if (deps.files) {
    const fileKey = fileLinkKey(config);
    const links = new FileLinks(fileKey, config.GATE_FILE_LINK_TTL_MS);
    // A direct upload not completed within the time an unsent upload is kept starts over.
    const tickets = new UploadTickets(fileKey, config.GATE_UNSENT_UPLOAD_TTL_MS);
    await app.register(filesRoute, {
      ...deps.files,
      status: deps.status,
      ids: deps.ids,
      limiter: deps.limiter,
      config,
      log,
      links,
      tickets,
    });
  }
  if (deps.accounts) {
    await app.register(accountRoute, {
      users: deps.users,
      status: deps.status,
      limiter: deps.limiter,
      accounts: deps.accounts,
      config,
      hasher,
    });
  }
  if (deps.pushDevices) await app.register(pushRoute, { status: deps.status, devices: deps.pushDevices, config });
  await app.register(nodeRoute, { status: deps.status });
  if (deps.admin && config.ADMIN_API_ENABLED) {
    await app.register(adminApi, {
      ...deps.admin,
      users: deps.users,
      status: deps.status,
      ids: deps.ids,
      limiter: deps.limiter,
      config,
      log: log.child({ use: "server-api" }),
      hashPassword: (password) => hasher.hash(password),
    });
  }
  await app.register(webRoute, { config, log });
  await app.ready();
  return app;
}
