import type { Config } from "../config/settings.js";
import type { FileStore } from "../files/ports.js";
import type { StatusServiceService } from "../gen/shardchat/v1/status.js";
import type { VerifyServiceService } from "../gen/shardchat/v1/verify.js";
import type { Api } from "../grpc/api.js";
import type { IdGenerator } from "../ids/ports.js";
import type { Logger } from "../log/logger.js";
import type { Probe } from "../metrics/health.js";
import type { Metrics } from "../metrics/metrics.js";
import type { RateLimiter } from "../routing/ports.js";
import type { FileMetaStore, MessageStore, UserStore } from "../storage/ports.js";

/** What gate needs from the outside world; gate itself keeps no state. */
export interface GateDeps {
  users: UserStore;
  verify: Api<typeof VerifyServiceService>;
  status: Api<typeof StatusServiceService>;
  ids: IdGenerator;
  /** Login failures per account (lockout). */
  limiter: RateLimiter;
  config: Config;
  log: Logger;
  /** Served on the ops server's /metrics; a fresh registry when absent. */
  metrics?: Metrics;
  /** Uploads and downloads (POST/GET /v1/files); none served when absent. */
  files?: GateFiles;
  /** What /readyz asks (users' database, verify, status); none when absent. */
  probes?: Probe[];
}

/** What gate needs to take and hand out files; without it gate serves no /v1/files. */
export interface GateFiles {
  meta: FileMetaStore;
  bytes: FileStore;
  /** Who is in a conversation (group members are its member rows). */
  messages: Pick<MessageStore, "isMember">;
}
