import { z } from "zod";

/**
 * Every setting of every service, in one table. Each is read from the environment variable
 * of its name; `describeSettings()` prints this table for `--help` and README.
 */
const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();
const bool = z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1");

export const settings = {
  LOG_LEVEL: {
    schema: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]),
    default: "info",
    doc: "pino log level.",
  },
  STORAGE_BACKEND: {
    schema: z.enum(["sqlite", "mysql"]),
    default: "sqlite",
    doc: "Where users and messages live: sqlite (one file under DATA_DIR, for a single machine) or mysql (MYSQL_URL, shared by any number of processes).",
  },
  ROUTING_BACKEND: {
    schema: z.enum(["memory", "redis"]),
    default: "memory",
    doc: "Where codes, tokens, node membership, routes and id leases live: memory (everything in one process, `npm start` only) or redis (REDIS_URL, needed when services run as separate processes).",
  },
  DATA_DIR: {
    schema: z.string().min(1),
    default: "./data",
    doc: "Directory for local data (the SQLite database with STORAGE_BACKEND=sqlite); created if missing.",
  },
  MYSQL_URL: {
    schema: z.string().url(),
    default: "mysql://root@127.0.0.1:3306/shardchat",
    doc: "MySQL/MariaDB holding users, conversations and messages. The database is created by the migration if missing.",
  },
  MYSQL_POOL_SIZE: { schema: positiveInt, default: "10", doc: "Connections per MySQL pool." },
  MYSQL_DEADLOCK_RETRIES: {
    schema: z.coerce.number().int().min(0).max(20),
    default: "5",
    doc: "How often a message write that lost a deadlock is retried before answering STORAGE_UNAVAILABLE.",
  },
  MYSQL_SHARDS: {
    schema: z
      .string()
      .refine((v) => v.split(",").every((u) => u.trim() === "" || URL.canParse(u.trim())), "every entry must be a URL"),
    default: "",
    doc: "Comma-separated MySQL URLs of the shard instances (the first is the control instance holding the shard map). Empty: MYSQL_URL alone, unsharded.",
  },
  SHARD_SLOTS: {
    schema: z.coerce.number().int().min(1).max(65536),
    default: "1024",
    doc: "Logical slots conversations, users and index rows are hashed into (CRC-32 mod slots); fixed when the shard map is first stored, a different value later stops the process.",
  },
  SHARD_MAP_REFRESH_MS: {
    schema: positiveInt,
    default: "5000",
    doc: "How often every node re-reads the shard map from the control instance, to follow a rebalance.",
  },
  SHARD_KNOWN_CONVERSATIONS: {
    schema: positiveInt,
    default: "100000",
    doc: "Conversation ids a node remembers as already listed in their members' user_conversations index, so their messages skip the index write.",
  },
  USER_INDEX_ORPHAN_MS: {
    schema: positiveInt,
    default: "60000",
    doc: "A name or email index row whose user row is still missing after this long (a create that died half-way) is reclaimed by the next create of that name or email.",
  },
  REDIS_URL: {
    schema: z.string().url(),
    default: "redis://127.0.0.1:6379",
    doc: "Redis for codes, tokens, node membership, routing and id leases.",
  },
  REDIS_CLUSTER_NODES: {
    schema: z
      .string()
      .refine((v) => v.split(",").every((n) => n.trim() === "" || /^[^\s:]+:\d{1,5}$/.test(n.trim())), "host:port,..."),
    default: "",
    doc: "Comma-separated host:port of Redis Cluster nodes (some are enough, the rest is discovered). Empty: the single REDIS_URL.",
  },
  REDIS_KEY_PREFIX: {
    schema: z.string().max(64),
    default: "sc:",
    doc: "Prefix of every Redis key, so several stacks can share one Redis.",
  },
  GATE_HOST: { schema: z.string(), default: "127.0.0.1", doc: "gate's HTTP listen address." },
  GATE_PORT: { schema: port, default: "8080", doc: "gate's HTTP port." },
  GATE_BODY_LIMIT_BYTES: { schema: positiveInt, default: "65536", doc: "Largest JSON body gate accepts." },
  GATE_TRUST_PROXY: {
    schema: bool,
    default: "false",
    doc: "Take the client address from X-Forwarded-For (set when gate runs behind nginx).",
  },
  PASSWORD_MIN_LENGTH: { schema: positiveInt, default: "8", doc: "Shortest password register and reset accept." },
  VERIFY_ADDR: {
    schema: z.string(),
    default: "127.0.0.1:50051",
    doc: "verify's gRPC address (host:port): where verify listens and gate calls it.",
  },
  VERIFY_CODE_TTL_SECONDS: { schema: positiveInt, default: "180", doc: "How long a verify code is valid." },
  VERIFY_COOLDOWN_SECONDS: {
    schema: positiveInt,
    default: "60",
    doc: "Shortest time between two codes for one email.",
  },
  VERIFY_MAX_PER_ADDR_PER_HOUR: {
    schema: positiveInt,
    default: "20",
    doc: "Codes one client address may request per hour.",
  },
  VERIFY_MAX_ATTEMPTS: {
    schema: positiveInt,
    default: "5",
    doc: "Wrong guesses that burn a verify code: after that many, a new code must be requested.",
  },
  SMTP_URL: {
    schema: z.string(),
    default: "",
    doc: "SMTP server for verify mail (smtp://user:pass@host:port). Empty: the code is written to the log instead.",
  },
  MAIL_FROM: { schema: z.string(), default: "shardchat <no-reply@localhost>", doc: "From: of verify mail." },
  STATUS_ADDR: {
    schema: z.string(),
    default: "127.0.0.1:50052",
    doc: "status's gRPC address (host:port): where status listens and others call it.",
  },
  NODE_HEARTBEAT_INTERVAL_MS: {
    schema: positiveInt,
    default: "2000",
    doc: "How often a chat node heartbeats to status.",
  },
  NODE_TTL_MS: {
    schema: positiveInt,
    default: "6000",
    doc: "A chat node without a heartbeat for this long leaves the ring.",
  },
  RING_VNODES: {
    schema: positiveInt,
    default: "160",
    doc: "Virtual nodes per unit of weight on the consistent-hash ring.",
  },
  ROUTE_TTL_SECONDS: {
    schema: z.coerce.number().int().min(0),
    default: "120",
    doc: "Life of a uid → chat node route in Redis, renewed by the node (on each client heartbeat) while the session lives, so a crashed node's routes expire by themselves. Keep it above CHAT_IDLE_TIMEOUT_MS. 0: routes never expire.",
  },
  TOKEN_TTL_SECONDS: { schema: positiveInt, default: "86400", doc: "How long a login token opens a chat session." },
  CLOCK_BACKWARDS_TOLERANCE_MS: {
    schema: z.coerce.number().int().min(0),
    default: "5",
    doc: "Snowflake ids: a clock step backwards up to this long is waited out; a longer one makes id issuing fail (UNAVAILABLE) until the clock catches up.",
  },
  WORKER_LEASE_TTL_MS: {
    schema: positiveInt,
    default: "30000",
    doc: "Lease on a snowflake worker id in Redis, renewed every third of it; a process that cannot renew in time stops issuing ids.",
  },
  CHAT_NODE_ID: {
    schema: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/),
    default: "chat-1",
    doc: "This chat node's id, unique in the cluster.",
  },
  CHAT_HOST: { schema: z.string(), default: "127.0.0.1", doc: "Address the chat node listens on." },
  CHAT_PUBLIC_HOST: {
    schema: z.string(),
    default: "",
    doc: "Host clients are told to connect to (login answer, redirects). Empty: CHAT_HOST.",
  },
  CHAT_GRPC_PUBLIC_HOST: {
    schema: z.string(),
    default: "",
    doc: "Host other chat nodes reach this node's gRPC at (e.g. its container name). Empty: CHAT_PUBLIC_HOST, else CHAT_HOST.",
  },
  CHAT_TCP_PORT: { schema: port, default: "9001", doc: "Raw TCP listener of the chat node." },
  CHAT_WS_PORT: { schema: port, default: "9101", doc: "WebSocket listener of the chat node." },
  CHAT_GRPC_PORT: { schema: port, default: "50061", doc: "Node-to-node gRPC listener of the chat node." },
  CHAT_WEIGHT: { schema: positiveInt, default: "1", doc: "This node's share of users on the ring." },
  CHAT_MAX_FRAME_BYTES: {
    schema: positiveInt,
    default: "65536",
    doc: "Largest client frame; a bigger one closes the session with FRAME_TOO_LARGE.",
  },
  CHAT_MAX_TEXT_CHARS: { schema: positiveInt, default: "4000", doc: "Longest text message." },
  CHAT_LOGIN_TIMEOUT_MS: {
    schema: positiveInt,
    default: "10000",
    doc: "A connection that has not logged in by then is closed.",
  },
  CHAT_IDLE_TIMEOUT_MS: {
    schema: positiveInt,
    default: "60000",
    doc: "A session with no frame for this long is closed with IDLE_TIMEOUT.",
  },
  CHAT_CLIENT_HEARTBEAT_MS: {
    schema: positiveInt,
    default: "20000",
    doc: "Heartbeat interval the node asks clients for.",
  },
  CHAT_SYNC_BATCH: { schema: positiveInt, default: "200", doc: "Most messages in one sync or history reply." },
  CHAT_MAX_SESSIONS: { schema: positiveInt, default: "100000", doc: "Most sessions one chat node accepts." },
  CHAT_MAX_OUTBOUND_BYTES: {
    schema: positiveInt,
    default: "4194304",
    doc: "Bytes a session may have queued for sending; a client that reads slower than that is disconnected.",
  },
  CHAT_MAX_QUEUED_FRAMES: {
    schema: positiveInt,
    default: "256",
    doc: "Requests of one session waiting to be handled (they run in order); more closes it with RATE_LIMITED.",
  },
  CHAT_CLOSE_GRACE_MS: {
    schema: positiveInt,
    default: "2000",
    doc: "How long a closing session gets to flush its last frames before its socket is destroyed.",
  },
  CHAT_PEER_REFRESH_MS: {
    schema: positiveInt,
    default: "2000",
    doc: "Shortest time between two reloads of the chat node list (for node-to-node gRPC) from status.",
  },
  STACK_CHAT_NODES: {
    schema: z.coerce.number().int().min(0).max(64),
    default: "0",
    doc: "`npm start`: how many chat nodes to run; node i uses the CHAT_*_PORT settings plus i-1. 0: one with ROUTING_BACKEND=memory, two with redis.",
  },
} as const;

export type SettingName = keyof typeof settings;
export type Config = { [K in SettingName]: z.output<(typeof settings)[K]["schema"]> };
