/**
 * A process that logs as a service does (the settings' LOG_FORMAT, LOG_SAMPLE_MS, LOG_LEVEL):
 * a start line, a hot-path warning repeated 5 times, a debug line, and after LOG_SAMPLE_MS the
 * warning once more. test/log-format.test.ts runs it with and without a terminal.
 */
import { loadConfig } from "../../src/config/load.js";
import { createLogger, logOutputOf, sampled } from "../../src/log/logger.js";

const config = loadConfig();
const log = createLogger("log-lines", config.LOG_LEVEL, logOutputOf(config));
log.info({ port: 8180 }, "service listening");
for (let attempt = 1; attempt <= 5; attempt++) log.warn(sampled({ attempt }), "dependency unreachable");
log.debug("a debug line");
await new Promise((resolve) => setTimeout(resolve, config.LOG_SAMPLE_MS + 100));
log.warn(sampled({ attempt: 6 }), "dependency unreachable");
