import { parseArgs } from "node:util";
import { createStorageAdapters } from "../compose.js";
import { ConfigError, loadConfig } from "../config/load.js";
import { hashPassword } from "../gate/password.js";
import { MAX_WORKER_ID, Snowflake } from "../ids/snowflake.js";
import { createLogger, logOutputOf } from "../log/logger.js";
import { seedData } from "./seed-data.js";

const usage = `npm run seed-data -- [--messages 100000] [--users 1000] [--groups 10] [--group-size 50]
  [--group-share 0.2] [--concurrency 256] [--bulk-batch 20000] [--run <name>] [--worker-id ${MAX_WORKER_ID}]

Fills the storage the settings name (STORAGE_BACKEND, MYSQL_URL, MYSQL_SHARDS, as for the
services) with users, groups and realistic conversations, through the stores' own write paths:
each user talks mostly to a few contacts, --group-share of the messages go to groups. On MySQL
(one database or the shards) users and messages go through the storage's bulk path (its bulk
importer: --bulk-batch messages per batch, one batch at a time, multi-row statements, the
history counted as delivered and read); on SQLite through the live append path, --concurrency
appends at once. Every seeded user's password is "seed-password"; names are seed_<run>_<i>.
Message ids come from a snowflake with --worker-id: give one no running node uses (the default
is the highest).`;

const { values } = parseArgs({
  options: {
    messages: { type: "string", default: "100000" },
    users: { type: "string", default: "1000" },
    groups: { type: "string", default: "10" },
    "group-size": { type: "string", default: "50" },
    "group-share": { type: "string", default: "0.2" },
    concurrency: { type: "string", default: "256" },
    "bulk-batch": { type: "string", default: "20000" },
    run: { type: "string", default: Date.now().toString(36) },
    "worker-id": { type: "string", default: String(MAX_WORKER_ID) },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log(usage);
  process.exit(0);
}

function count(name: string, min = 0): number {
  const n = Number(values[name as keyof typeof values]);
  if (!Number.isInteger(n) || n < min) {
    console.error(`--${name} must be a whole number of at least ${min}\n\n${usage}`);
    process.exit(2);
  }
  return n;
}
const share = Number(values["group-share"]);
if (!(share >= 0 && share <= 1)) {
  console.error(`--group-share must be between 0 and 1\n\n${usage}`);
  process.exit(2);
}
if (!/^[A-Za-z0-9]{1,16}$/.test(values.run)) {
  console.error("--run must be 1-16 letters or digits (it goes into user names)");
  process.exit(2);
}

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(err.message);
  process.exit(2);
}
const log = createLogger("seed-data", config.LOG_LEVEL, logOutputOf(config));
const storage = await createStorageAdapters(config, log);
try {
  const report = await seedData(storage, new Snowflake({ workerId: count("worker-id") }), {
    users: count("users", 2),
    messages: count("messages"),
    groups: count("groups"),
    groupSize: count("group-size", 2),
    groupShare: share,
    concurrency: count("concurrency", 1),
    bulkBatch: count("bulk-batch", 1),
    passwordHash: await hashPassword("seed-password"),
    run: values.run,
    onProgress: ({ users, messages }) => console.log(`seeded ${users} users, ${messages} messages`),
  });
  console.log(
    `seeded ${report.users.length} users, ${report.groupIds.length} groups, ${report.messages} messages in ${report.conversations} conversations in ${report.seconds.toFixed(1)} s (${Math.round(report.messages / Math.max(report.seconds, 0.001))} msg/s) into ${storage.storageLocation}`,
  );
} finally {
  await storage.close();
}
