import type { Config } from "../config/settings.js";
import type { StatusServiceService } from "../gen/shardchat/v1/status.js";
import type { VerifyServiceService } from "../gen/shardchat/v1/verify.js";
import type { Api } from "../grpc/api.js";
import type { IdGenerator } from "../ids/ports.js";
import type { Logger } from "../log/logger.js";
import type { UserStore } from "../storage/ports.js";

/** What gate needs from the outside world; gate itself keeps no state. */
export interface GateDeps {
  users: UserStore;
  verify: Api<typeof VerifyServiceService>;
  status: Api<typeof StatusServiceService>;
  ids: IdGenerator;
  config: Config;
  log: Logger;
}
