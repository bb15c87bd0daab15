import { randomBytes } from "node:crypto";
import Fastify, { type FastifyInstance } from "fastify";
import type { GateDeps } from "./deps.js";
import { errorHandler, notFoundHandler } from "./errors.js";
import { hashPassword } from "./password.js";
import { healthzRoute } from "./routes/healthz.js";
import { loginRoute } from "./routes/login.js";
import { registerRoute } from "./routes/register.js";
import { resetPasswordRoute } from "./routes/reset-password.js";
import { verifyCodeRoute } from "./routes/verify-code.js";
import { errorReplySchema } from "./schemas.js";

export type { GateDeps };

/** gate's HTTP app, not yet listening (tests drive it with inject()). */
export async function buildGateApp(deps: GateDeps): Promise<FastifyInstance> {
  const { config, log } = deps;
  const app = Fastify({
    logger: false,
    bodyLimit: config.GATE_BODY_LIMIT_BYTES,
    trustProxy: config.GATE_TRUST_PROXY,
    ajv: {
      // A number where a string belongs is a wrong type, not something to convert.
      customOptions: { coerceTypes: false, allErrors: false },
    },
  });
  app.addSchema(errorReplySchema);
  app.setErrorHandler(errorHandler(log));
  app.setNotFoundHandler(notFoundHandler);

  const dummyHash = await hashPassword(randomBytes(16).toString("hex"));
  await app.register(healthzRoute);
  await app.register(verifyCodeRoute, { verify: deps.verify });
  await app.register(registerRoute, { users: deps.users, verify: deps.verify, ids: deps.ids, config });
  await app.register(resetPasswordRoute, { users: deps.users, verify: deps.verify, config });
  await app.register(loginRoute, { users: deps.users, status: deps.status, dummyHash });
  await app.ready();
  return app;
}
