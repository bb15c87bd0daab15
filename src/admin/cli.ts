import { createStorageAdapters } from "../compose.js";
import { loadConfig } from "../config/load.js";
import { codeOf, errorName } from "../errors.js";
import { createLogger, logOutputOf } from "../log/logger.js";
import { runAdminCommand, UsageError } from "./api-key-command.js";

/** `npm run admin -- api-key ...` (see api-key-command.ts), with the server's own settings and storage. */
const config = loadConfig();
const log = createLogger("admin", config.LOG_LEVEL === "info" ? "warn" : config.LOG_LEVEL, logOutputOf(config));
const storage = await createStorageAdapters(config, log);
try {
  for (const line of await runAdminCommand(storage.apiKeys, process.argv.slice(2))) console.log(line);
} catch (err) {
  if (err instanceof UsageError) console.error(err.message);
  else console.error(`failed: ${errorName(codeOf(err))}: ${(err as Error).message}`);
  process.exitCode = 1;
} finally {
  await storage.close();
}
