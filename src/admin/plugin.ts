import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { FastifyPluginAsync } from "fastify";
import { requireApiKey } from "./auth.js";
import { adminBotRoutes } from "./bots.js";
import type { AdminDeps } from "./deps.js";
import { adminGroupRoutes } from "./groups.js";
import { adminMessageRoutes } from "./messages.js";
import { adminReadRoutes } from "./reads.js";
import { adminUserRoutes } from "./users.js";

/**
 * The Server API (issue 18) under gate's /admin: /admin/v1/* behind API keys, the OpenAPI 3
 * document made from the routes' own schemas at /admin/openapi.json, and Swagger UI at
 * /admin/docs. Registered as an encapsulated plugin, so the document lists these routes only
 * (swagger sees the routes of its own context, not gate's client routes).
 */
export const adminApi: FastifyPluginAsync<AdminDeps> = async (app, deps) => {
  await app.register(swagger, {
    openapi: {
      openapi: "3.0.3",
      info: {
        title: "shardchat Server API",
        version: "1",
        description:
          "Operate a shardchat deployment from a backend: users, messages, groups, reads and stats. Every /admin/v1 route needs `Authorization: Bearer sk_...` (make a key with `npm run admin -- api-key create --name <name>`). Failures answer `{error, message}` with a code of the error table.",
      },
      components: {
        securitySchemes: { apiKey: { type: "http", scheme: "bearer", description: "An API key: sk_<id>_<secret>" } },
      },
      security: [{ apiKey: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: "/admin/docs" });
  app.get("/admin/openapi.json", { schema: { hide: true } }, async () => app.swagger());
  requireApiKey(app, deps);
  await app.register(adminUserRoutes, deps);
  await app.register(adminMessageRoutes, deps);
  await app.register(adminGroupRoutes, deps);
  await app.register(adminReadRoutes, deps);
  // Bots (issue 18), where gate has their store.
  if (deps.bots) await app.register(adminBotRoutes, { ...deps, bots: deps.bots });
};
