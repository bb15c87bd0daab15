import type { AdminStores } from "../admin/deps.js";
import type { Config } from "../config/settings.js";
import type { FileStore } from "../files/ports.js";
import type { ResumableStore } from "../files/resumable-store.js";
import type { StatusServiceService } from "../gen/shardchat/v1/status.js";
import type { VerifyServiceService } from "../gen/shardchat/v1/verify.js";
import type { Api } from "../grpc/api.js";
import type { IdGenerator } from "../ids/ports.js";
import type { Logger } from "../log/logger.js";
import type { Probe } from "../metrics/health.js";
import type { Metrics } from "../metrics/metrics.js";
import type { RateLimiter } from "../routing/ports.js";
import type { FileMetaStore, MessageStore, PushDeviceStore, Uid, UserStore } from "../storage/ports.js";
import type { Tracing } from "../tracing/ports.js";
import type { MediaProbe } from "./file-media.js";

/** The settings gate reads: a slice of Config. */
export type GateConfig = Pick<
  Config,
  | "GATE_BODY_LIMIT_BYTES"
  | "GATE_FILE_LINK_SECRET"
  | "GATE_FILE_LINK_TTL_MS"
  | "FILE_URL_TTL_SECONDS"
  | "MEDIA_MAX_DURATION_MS"
  | "GATE_FILE_MAX_BYTES"
  | "GATE_RESUMABLE_MAX_BYTES"
  | "GATE_FILE_TYPES"
  | "GATE_HASHES_IN_FLIGHT"
  | "GATE_HASH_QUEUE_MAX"
  | "GATE_HOST"
  | "GATE_IDLE_TIMEOUT_MS"
  | "GATE_PORT"
  | "GATE_REQUEST_TIMEOUT_MS"
  | "GATE_TRUST_PROXY"
  | "GATE_UNSENT_UPLOAD_TTL_MS"
  | "GATE_UPLOADS_PER_USER_PER_DAY"
  | "GATE_UPLOAD_BYTES_PER_USER_PER_DAY"
  | "GATE_UPLOAD_SWEEP_INTERVAL_MS"
  | "GATE_USER_STORAGE_MAX_BYTES"
  | "INTERNAL_AUTH_TOKEN"
  | "LOGIN_LOCKOUT_SECONDS"
  | "LOGIN_MAX_FAILURES"
  | "LOGIN_MAX_PER_ADDR_PER_MINUTE"
  | "LOGIN_MAX_PER_SECOND"
  | "PASSWORD_MAX_LENGTH"
  | "PASSWORD_MIN_LENGTH"
  | "STATUS_ADDR"
  | "VERIFY_ADDR"
  | "WEB_DIR"
  | "METRICS_HOST"
  | "METRICS_PORT"
  | "READY_PROBE_TIMEOUT_MS"
  | "ADMIN_API_ENABLED"
  | "ADMIN_IMPORT_MAX"
  | "ADMIN_REQUESTS_PER_MINUTE"
  | "ADMIN_PAGE_MAX"
  | "PUSH_DEVICES_PER_USER"
  | "PUSH_TOKEN_MAX_BYTES"
  | "WEB_PUSH_VAPID_PUBLIC_KEY"
  | "WEB_PUSH_ENDPOINT_HOSTS"
  | "BOTS_WEBHOOK_HOSTS"
  | "BOT_WEBHOOK_URL_MAX_CHARS"
>;

/** What gate needs from the outside world; gate itself keeps no state. */
export interface GateDeps {
  users: UserStore;
  verify: Api<typeof VerifyServiceService>;
  status: Api<typeof StatusServiceService>;
  ids: IdGenerator;
  /** Login failures per account (lockout). */
  limiter: RateLimiter;
  config: GateConfig;
  log: Logger;
  /** Served on the ops server's /metrics; a fresh registry when absent. */
  metrics?: Metrics;
  /** Uploads and downloads (POST/GET /v1/files); none served when absent. */
  files?: GateFiles;
  /** What /readyz asks (users' database, verify, status); none when absent. */
  probes?: Probe[];
  /**
   * Gate's half of account deletion (DELETE /v1/account, issue 17: src/account/request-deletion.ts);
   * not served when absent.
   */
  accounts?: { request(uid: Uid): Promise<unknown> };
  /**
   * The Server API under /admin (issue 18: src/admin/), served when ADMIN_API_ENABLED; its bans
   * are checked by every login either way. Neither when absent.
   */
  admin?: AdminStores;
  /** Users' push devices (PUT and DELETE /v1/push/devices, GET /v1/push/config, issue 18); not served when absent. */
  pushDevices?: PushDeviceStore;
  /** A span per request when on (TRACING_OTLP_URL); none when absent. */
  tracing?: Tracing;
}

/** What gate needs to take and hand out files; without it gate serves no /v1/files. */
export interface GateFiles {
  meta: FileMetaStore;
  bytes: FileStore;
  /** Who is in a conversation (group members are its member rows). */
  messages: Pick<MessageStore, "isMember">;
  /** Images' dimensions and thumbnails, made on upload (issue 19); absent: uploads carry none. */
  previews?: MediaProbe;
  /** Where resumable (tus) uploads wait until finished; absent: /v1/files/tus is not served. */
  resumable?: ResumableStore;
}
