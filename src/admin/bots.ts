import type { FastifyPluginAsync } from "fastify";
import { BOT_PASSWORD_HASH, botEmail, checkBotWebhookUrl } from "../bots/account.js";
import { AppError, ErrorCode } from "../errors.js";
import type { Uid } from "../ids/identifiers.js";
import type { BotRecord, BotStore } from "../storage/ports.js";
import type { AdminDeps } from "./deps.js";
import { adminReplies, okWith, uidParams, userNameSchema } from "./schemas.js";

const botSchema = {
  type: "object",
  properties: {
    uid: { type: "string" },
    name: { type: "string" },
    webhookUrl: { type: "string" },
    createdAt: { type: "integer" },
    updatedAt: { type: "integer" },
  },
  required: ["uid", "name", "webhookUrl", "createdAt", "updatedAt"],
} as const;

function webhookUrlSchema(maxChars: number) {
  return {
    type: "string",
    minLength: 8,
    maxLength: maxChars,
    description: "Where the bot's bot.message events are POSTed (http or https)",
  } as const;
}

/**
 * Bots (issue 18): an account the Server API drives. Made here as a user that never logs in
 * (BOT_ACCOUNT at login) plus its bot row (uid, webhook URL); the chat nodes' webhook dispatcher
 * (BOTS_ENABLED) POSTs it every message it should see, and it answers with POST
 * /admin/v1/messages as `from`. Served only where gate has the bot store.
 */
export const adminBotRoutes: FastifyPluginAsync<AdminDeps & { bots: BotStore }> = async (app, deps) => {
  const { users, bots, ids, config } = deps;
  const urlLimits = { maxChars: config.BOT_WEBHOOK_URL_MAX_CHARS, hosts: config.BOTS_WEBHOOK_HOSTS };

  async function botJson(bot: BotRecord) {
    const user = await users.byUid(bot.uid);
    return {
      uid: bot.uid,
      name: user?.name ?? "",
      webhookUrl: bot.webhookUrl,
      createdAt: bot.createdAt,
      updatedAt: bot.updatedAt,
    };
  }

  async function botOr404(uid: Uid): Promise<BotRecord> {
    const bot = await bots.byUid(uid);
    if (!bot) throw new AppError(ErrorCode.NOT_FOUND, `no bot ${uid}`);
    return bot;
  }

  app.post<{ Body: { name: string; webhookUrl: string } }>(
    "/admin/v1/bots",
    {
      schema: {
        summary: "Create a bot: a user that never logs in, which receives its messages as bot.message webhooks",
        tags: ["bots"],
        body: {
          type: "object",
          properties: { name: userNameSchema, webhookUrl: webhookUrlSchema(config.BOT_WEBHOOK_URL_MAX_CHARS) },
          required: ["name", "webhookUrl"],
          additionalProperties: false,
        },
        response: adminReplies(okWith({ bot: botSchema }, ["bot"])),
      },
    },
    async (request) => {
      const webhookUrl = checkBotWebhookUrl(request.body.webhookUrl, urlLimits);
      const uid = ids.next();
      const now = Date.now();
      // The user first: its name is the one check that can fail (USER_EXISTS).
      await users.create({
        uid,
        name: request.body.name,
        email: botEmail(uid),
        passwordHash: BOT_PASSWORD_HASH,
        createdAt: now,
      });
      const bot: BotRecord = { uid, webhookUrl, createdAt: now, updatedAt: now };
      try {
        await bots.create(bot);
      } catch (err) {
        // No half-made bot: the name is free again for a retry.
        await users.delete(uid).catch((e: unknown) => deps.log.warn({ err: e, uid }, "undoing a bot's user failed"));
        throw err;
      }
      deps.log.info({ uid, name: request.body.name, keyId: request.apiKey?.id }, "bot created");
      return { error: ErrorCode.OK, bot: await botJson(bot) };
    },
  );

  app.get(
    "/admin/v1/bots",
    {
      schema: {
        summary: "Every bot, by uid",
        tags: ["bots"],
        response: adminReplies(okWith({ bots: { type: "array", items: botSchema } }, ["bots"])),
      },
    },
    async () => {
      const list = (await bots.list()).slice(0, deps.config.ADMIN_PAGE_MAX);
      return { error: ErrorCode.OK, bots: await Promise.all(list.map(botJson)) };
    },
  );

  app.get<{ Params: { uid: Uid } }>(
    "/admin/v1/bots/:uid",
    {
      schema: {
        summary: "A bot: its name and webhook URL",
        tags: ["bots"],
        params: uidParams,
        response: adminReplies(okWith({ bot: botSchema }, ["bot"])),
      },
    },
    async (request) => ({ error: ErrorCode.OK, bot: await botJson(await botOr404(request.params.uid)) }),
  );

  app.patch<{ Params: { uid: Uid }; Body: { webhookUrl: string } }>(
    "/admin/v1/bots/:uid",
    {
      schema: {
        summary: "Change a bot's webhook URL (the dispatchers use it within BOTS_CACHE_MS)",
        tags: ["bots"],
        params: uidParams,
        body: {
          type: "object",
          properties: { webhookUrl: webhookUrlSchema(config.BOT_WEBHOOK_URL_MAX_CHARS) },
          required: ["webhookUrl"],
          additionalProperties: false,
        },
        response: adminReplies(okWith({ bot: botSchema }, ["bot"])),
      },
    },
    async (request) => {
      const { uid } = request.params;
      const webhookUrl = checkBotWebhookUrl(request.body.webhookUrl, urlLimits);
      if (!(await bots.setWebhook(uid, webhookUrl, Date.now())))
        throw new AppError(ErrorCode.NOT_FOUND, `no bot ${uid}`);
      return { error: ErrorCode.OK, bot: await botJson(await botOr404(uid)) };
    },
  );

  app.delete<{ Params: { uid: Uid } }>(
    "/admin/v1/bots/:uid",
    {
      schema: {
        summary:
          "Delete a bot: it receives nothing more (within BOTS_CACHE_MS); its account stays, never logs in, and keeps its history",
        tags: ["bots"],
        params: uidParams,
        response: adminReplies(okWith({ removed: { type: "boolean" } }, ["removed"])),
      },
    },
    async (request) => {
      const { uid } = request.params;
      if (!(await bots.remove(uid))) throw new AppError(ErrorCode.NOT_FOUND, `no bot ${uid}`);
      deps.log.info({ uid, keyId: request.apiKey?.id }, "bot deleted");
      return { error: ErrorCode.OK, removed: true };
    },
  );
};
