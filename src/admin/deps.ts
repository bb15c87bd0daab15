import type { Config } from "../config/settings.js";
import type { StatusServiceService } from "../gen/shardchat/v1/status.js";
import type { Api } from "../grpc/api.js";
import type { IdGenerator } from "../ids/ports.js";
import type { Logger } from "../log/logger.js";
import type { RateLimiter } from "../routing/ports.js";
import type { ApiKeyStore, BanStore, BotStore, GroupStore, ReportStore, UserStore } from "../storage/ports.js";
import type { ChatNodeActions } from "./chat-nodes.js";

/** The settings the Server API reads. */
export type AdminConfig = Pick<
  Config,
  | "ADMIN_API_ENABLED"
  | "ADMIN_IMPORT_MAX"
  | "ADMIN_REQUESTS_PER_MINUTE"
  | "ADMIN_PAGE_MAX"
  | "PASSWORD_MIN_LENGTH"
  | "PASSWORD_MAX_LENGTH"
  | "BOTS_WEBHOOK_HOSTS"
  | "BOT_WEBHOOK_URL_MAX_CHARS"
>;

/** What the Server API needs beyond gate's own dependencies (gate's `admin`). */
export interface AdminStores {
  keys: ApiKeyStore;
  bans: BanStore;
  /** A group's owner (the uid its changes run as) and whether it exists. */
  groups: Pick<GroupStore, "get">;
  reports: Pick<ReportStore, "recent">;
  /** Bots (issue 18): the /admin/v1/bots routes are served when present. */
  bots?: BotStore;
  /** Requests that change chat state, run on the chat nodes. */
  chat: ChatNodeActions;
}

/** Everything the Server API's routes use. */
export interface AdminDeps extends AdminStores {
  users: UserStore;
  status: Api<typeof StatusServiceService>;
  ids: IdGenerator;
  limiter: RateLimiter;
  config: AdminConfig;
  log: Logger;
  /** gate's scrypt queue: passwords of created users. */
  hashPassword(password: string): Promise<string>;
}
