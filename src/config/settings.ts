import { z } from "zod";
import { COLUMN_CHARS } from "../ids/identifiers.js";
import { checkUrl, parseEndpoints } from "../webhooks/endpoints.js";

/**
 * Every setting of every service, in one table. Each is read from the environment variable
 * of its name; `describeSettings()` prints this table for `--help` and README.
 */
const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();
const nonNegativeInt = z.coerce.number().int().min(0);
const bool = z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1");

export const settings = {
  LOG_LEVEL: {
    schema: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]),
    default: "info",
    doc: "pino log level.",
  },
  LOG_FORMAT: {
    schema: z.enum(["auto", "json", "pretty"]),
    default: "auto",
    doc: "auto: pretty, coloured lines (pino-pretty) when stdout is a terminal, JSON lines otherwise (files, pipes, log collectors); json or pretty: always that. NO_COLOR turns the colours off.",
  },
  LOG_SAMPLE_MS: {
    schema: nonNegativeInt,
    default: "10000",
    doc: "Log lines that can repeat per message or per request (a failure every send meets while a dependency is down) are written once per this many ms for each text, with `suppressed`: how many were dropped. 0 writes every one.",
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
  MYSQL_MIGRATE: {
    schema: bool,
    default: "true",
    doc: "Apply the schema migrations (sql/) at start, which needs a MySQL user allowed to create and alter tables. false: a service whose user may only read and write rows; run `npm run migrate` (or compose's migrate job) with an admin user first.",
  },
  MYSQL_SERVICE_USERS: {
    schema: z.string(),
    default: "",
    doc: "For `npm run migrate` with an admin user: after the migrations, give each service's own MySQL user exactly its tables (gate=<user>,chat=<user>; the users must exist, e.g. made by ops/compose/mariadb-users.sh). Empty: no grants.",
  },
  MYSQL_CONNECT_TIMEOUT_MS: {
    schema: positiveInt,
    default: "5000",
    doc: "Longest wait to open a connection to a MySQL instance.",
  },
  MYSQL_ACQUIRE_TIMEOUT_MS: {
    schema: positiveInt,
    default: "5000",
    doc: "Longest wait for a free pooled MySQL connection; past it the request answers STORAGE_UNAVAILABLE.",
  },
  MYSQL_QUERY_TIMEOUT_MS: {
    schema: positiveInt,
    default: "10000",
    doc: "Longest wait for a MySQL statement's answer; past it the request answers STORAGE_UNAVAILABLE and the connection is dropped (a frozen instance holds nobody forever).",
  },
  MYSQL_APPEND_BATCH_MAX: {
    schema: z.coerce.number().int().min(1).max(1000),
    default: "64",
    doc: "Group commit of 1:1 messages: most messages stored in one transaction on one MySQL instance (multi-row inserts). An idle node stores each message at once; 1 turns batching off.",
  },
  MYSQL_ACK_BATCH_MAX: {
    schema: z.coerce.number().int().min(1).max(5000),
    default: "500",
    doc: "Most users' delivery cursors written in one transaction on one MySQL instance (a chat node's ack flush after a group post holds one per member it serves). 1 writes each user's alone.",
  },
  MYSQL_APPEND_BATCHES_IN_FLIGHT: {
    schema: z.coerce.number().int().min(1).max(64),
    default: "1",
    doc: "Group-commit transactions a node runs at once per MySQL instance; messages arriving meanwhile wait for the next batch (one in flight makes the largest batches: on 2 cores, 5,300 against 3,600 msg/s with two). Keep it below MYSQL_POOL_SIZE.",
  },
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
  SHARD_FENCE_WAIT_MS: {
    schema: positiveInt,
    default: "5000",
    doc: "How long a write waits (re-reading the shard map) for a slot a rebalance is moving before answering SLOT_MOVING.",
  },
  REBALANCE_BATCH_SLOTS: {
    schema: positiveInt,
    default: "64",
    doc: "Slots the rebalancer moves together: copied, fenced, verified and switched in one shard map version (a larger batch means fewer map versions and a longer write pause for those slots).",
  },
  REBALANCE_COPY_ROWS: {
    schema: positiveInt,
    default: "1000",
    doc: "Rows the rebalancer reads and writes per statement while copying a slot.",
  },
  REBALANCE_MAX_ROWS_PER_SECOND: {
    schema: z.coerce.number().int().min(0),
    default: "0",
    doc: "Most rows the rebalancer copies per second (0: no limit), to leave the instances room for live traffic during a move.",
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
  REDIS_PASSWORD: {
    schema: z.string().max(512),
    default: "",
    doc: "Password of every Redis node (requirepass; the cluster's replicas need it as masterauth too). Empty: none, for a Redis only this machine reaches. REDIS_URL may carry one itself.",
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
    schema: z
      .string()
      .transform((v) =>
        ["true", "1"].includes(v) ? true : ["false", "0", ""].includes(v) ? false : v.split(",").map((a) => a.trim()),
      ),
    default: "false",
    doc: "Take the client address (used by the per-address limits) from X-Forwarded-For: `true` trusts any sender, a comma list of proxy addresses or CIDRs (e.g. 127.0.0.1,10.0.0.0/8) trusts only those, so a client reaching gate directly cannot forge its address. Set when gate runs behind nginx.",
  },
  GATE_UPLOADS_PER_USER_PER_DAY: {
    schema: positiveInt,
    default: "500",
    doc: "Uploads one user may make in a day (POST /v1/files); past it RATE_LIMITED. With GATE_FILE_MAX_BYTES and the sweep of unsent uploads it bounds what one user can store without sending.",
  },
  GATE_UPLOAD_BYTES_PER_USER_PER_DAY: {
    schema: positiveInt,
    default: "1073741824",
    doc: "Bytes one user may upload in a day (1 GiB), sent or not: an upload that would pass it is refused with RATE_LIMITED and its bytes dropped (it spends none of the budget).",
  },
  GATE_UNSENT_UPLOAD_TTL_MS: {
    schema: positiveInt,
    default: "86400000",
    doc: "An upload no message names within this time is deleted (metadata and bytes) by gate's sweep; so is the object of a direct upload started and not completed within it (its ticket's lifetime).",
  },
  GATE_USER_STORAGE_MAX_BYTES: {
    schema: z.coerce.number().int().min(0),
    default: "5368709120",
    doc: "Bytes of files one user may keep stored (5 GiB): every upload not yet deleted, sent or not, and every direct or resumable upload started and not yet completed (by its declared size). An upload that would pass it answers STORAGE_QUOTA_EXCEEDED (a direct or resumable one by its declared size, at its start); recalled and expired messages' files stop counting once gate's sweep deletes them. 0: no quota.",
  },
  GATE_UPLOAD_SWEEP_INTERVAL_MS: {
    schema: z.coerce.number().int().min(0),
    default: "600000",
    doc: "How often gate sweeps unsent uploads, abandoned direct uploads and released files (0: never).",
  },
  ADMIN_API_ENABLED: {
    schema: bool,
    default: "true",
    doc: "Serve the Server API under gate's /admin (routes, /admin/openapi.json, /admin/docs). Every /admin/v1 route needs an API key made by `npm run admin -- api-key create`: with none made, nothing is reachable.",
  },
  ADMIN_IMPORT_MAX: {
    schema: positiveInt,
    default: "1000",
    doc: "Most users one POST /admin/v1/users/import creates (a larger batch answers INVALID_ARGUMENT).",
  },
  ADMIN_REQUESTS_PER_MINUTE: {
    schema: positiveInt,
    default: "6000",
    doc: "Server API requests one API key makes per minute (RATE_LIMITED beyond); requests with a wrong key count per client address against the same number.",
  },
  ADMIN_PAGE_MAX: {
    schema: positiveInt,
    default: "100",
    doc: "Largest page of the Server API's reads (history, conversation list, reports).",
  },
  GATE_FILE_LINK_TTL_MS: {
    schema: positiveInt,
    default: "600000",
    doc: "How long a signed file link (POST /v1/files/:id/link) opens its file. The chat token is refused in a URL.",
  },
  GATE_FILE_LINK_SECRET: {
    schema: z.string().max(512),
    default: "",
    doc: "Key that signs file links; every gate behind one address needs the same. Empty: derived from INTERNAL_AUTH_TOKEN, else random per gate process.",
  },
  GATE_FILE_MAX_BYTES: {
    schema: positiveInt,
    default: "10485760",
    doc: "Largest file gate accepts on POST /v1/files (bytes); a larger upload answers FILE_TOO_LARGE.",
  },
  GATE_FILE_TYPES: {
    schema: z.string().min(1),
    default:
      "image/png,image/jpeg,image/gif,image/webp,audio/webm,audio/ogg,audio/mp4,audio/mpeg,application/pdf,text/plain,application/zip,application/octet-stream",
    doc: "Comma-separated content types gate accepts for uploads; `type/*` allows a whole family. Others answer FILE_TYPE_NOT_ALLOWED.",
  },
  FILE_STORE_DIR: {
    schema: z.string(),
    default: "",
    doc: "Directory for uploaded files' bytes with FILE_STORE=local; empty means DATA_DIR/files. Every gate must see the same directory.",
  },
  FILE_STORE: {
    schema: z.enum(["local", "s3"]),
    default: "local",
    doc: "Where uploaded files' bytes live: local (FILE_STORE_DIR on gate's disk; gate serves and takes the bytes) or s3 (S3_BUCKET of an S3-compatible object store; clients move the bytes with presigned URLs).",
  },
  S3_ENDPOINT: {
    schema: z.string().refine((v) => v === "" || URL.canParse(v), "a URL or empty"),
    default: "",
    doc: "URL gate reaches the object store at (e.g. http://minio:9000). Empty: AWS S3 of S3_REGION.",
  },
  S3_PUBLIC_ENDPOINT: {
    schema: z.string().refine((v) => v === "" || URL.canParse(v), "a URL or empty"),
    default: "",
    doc: "URL clients reach the object store at, used in the presigned URLs gate hands out (it is part of their signature). Empty: S3_ENDPOINT.",
  },
  S3_REGION: {
    schema: z.string().min(1),
    default: "us-east-1",
    doc: "Region the object store's requests are signed for (most S3-compatible stores accept us-east-1).",
  },
  S3_BUCKET: {
    schema: z.string(),
    default: "",
    doc: "Bucket holding the files with FILE_STORE=s3 (required then; gate does not create it).",
  },
  S3_ACCESS_KEY_ID: {
    schema: z.string(),
    default: "",
    doc: "Access key of the object store, with S3_SECRET_ACCESS_KEY. Empty: the AWS SDK's default credential chain (environment, profile, instance role).",
  },
  S3_SECRET_ACCESS_KEY: {
    schema: z.string(),
    default: "",
    doc: "Secret of S3_ACCESS_KEY_ID (both set or both empty).",
  },
  S3_FORCE_PATH_STYLE: {
    schema: bool,
    default: "false",
    doc: "Address the bucket in the path (http://host/bucket/key) instead of the host name (http://bucket.host/key); most self-hosted S3-compatible stores need true.",
  },
  S3_KEY_PREFIX: {
    schema: z.string().refine((v) => !v.startsWith("/"), "no leading /"),
    default: "",
    doc: "Put before every object key (e.g. `prod/`), so that one bucket can hold several deployments' files.",
  },
  S3_PART_BYTES: {
    schema: z.coerce
      .number()
      .int()
      .min(5 * 1024 * 1024)
      .max(5 * 1024 * 1024 * 1024),
    default: "8388608",
    doc: "With FILE_STORE=s3, gate sends the bytes it stores itself (an upload through gate, a thumbnail) in parts of this many bytes, one held in memory at a time; a smaller file is one PUT. S3 allows 5 MiB to 5 GiB.",
  },
  FILE_URL_TTL_SECONDS: {
    schema: z.coerce.number().int().min(1).max(604800),
    default: "300",
    doc: "How long a presigned upload or download URL of the object store stays valid (S3 allows at most 7 days).",
  },
  GATE_RESUMABLE_MAX_BYTES: {
    schema: positiveInt,
    default: "1073741824",
    doc: "Largest file (1 GiB) a resumable upload (tus, /v1/files/tus) may declare in its Upload-Length; a larger one answers FILE_TOO_LARGE. GATE_FILE_MAX_BYTES stays the bound of the one-shot multipart upload.",
  },
  GATE_RESUMABLE_EXPIRY_MS: {
    schema: positiveInt,
    default: "86400000",
    doc: "An unfinished resumable upload (tus) expires this long after it was created: its upload URL answers 410 and gate's sweep deletes its bytes.",
  },
  GATE_RESUMABLE_LOCK_MS: {
    schema: positiveInt,
    default: "10000",
    doc: "Lease of a resumable upload's lock in Redis (one request at a time per upload, across every gate), renewed while its request runs: a gate that dies holding it frees the upload after this.",
  },
  GATE_RESUMABLE_LOCK_WAIT_MS: {
    schema: positiveInt,
    default: "30000",
    doc: "How long a resumable upload's request waits for the lock another request holds (asking that one to stop) before it answers 500 (tus's lock timeout).",
  },
  WEB_DIR: {
    schema: z.string(),
    default: "",
    doc: "The built web client gate serves under `/`; empty means web/dist of the repository. A directory without index.html serves nothing.",
  },
  PASSWORD_MIN_LENGTH: { schema: positiveInt, default: "8", doc: "Shortest password register and reset accept." },
  PASSWORD_MAX_LENGTH: {
    schema: positiveInt,
    default: "256",
    doc: "Longest password login, register and reset accept (longer bodies are refused before any hashing).",
  },
  LOGIN_MAX_PER_ADDR_PER_MINUTE: {
    schema: positiveInt,
    default: "60",
    doc: "Login attempts one client address may make per minute, counted before the user lookup and the password hash (RATE_LIMITED past it).",
  },
  LOGIN_MAX_PER_SECOND: {
    schema: positiveInt,
    default: "200",
    doc: "Login attempts all gates together accept per second, counted after the per-address budget and before the password hash (RATE_LIMITED past it).",
  },
  GATE_REQUEST_TIMEOUT_MS: {
    schema: positiveInt,
    default: "120000",
    doc: "Time a client has to send a whole request to gate (an upload on a slow link included); a slower one is cut off.",
  },
  GATE_IDLE_TIMEOUT_MS: {
    schema: positiveInt,
    default: "75000",
    doc: "A gate connection that sends nothing for this long is closed (slow or stalled clients cannot hold sockets).",
  },
  GATE_HASHES_IN_FLIGHT: {
    schema: positiveInt,
    default: "4",
    doc: "Password hashes (scrypt, 32 MiB each) a gate runs at once; more wait in a queue of GATE_HASH_QUEUE_MAX.",
  },
  GATE_HASH_QUEUE_MAX: {
    schema: z.coerce.number().int().min(0).max(100_000),
    default: "64",
    doc: "Password hashes waiting for a slot on a gate; a login, register or reset beyond them is answered UNAVAILABLE (503) at once.",
  },
  LOGIN_MAX_FAILURES: {
    schema: positiveInt,
    default: "5",
    doc: "Wrong passwords in a row after which an account is locked (login answers ACCOUNT_LOCKED) for LOGIN_LOCKOUT_SECONDS.",
  },
  LOGIN_LOCKOUT_SECONDS: {
    schema: positiveInt,
    default: "900",
    doc: "How long an account stays locked after LOGIN_MAX_FAILURES wrong passwords; the failure count also resets after this long.",
  },
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
    doc: "Wrong guesses that burn a verify code: after that many, a new code must be requested (after the cool-down).",
  },
  VERIFY_MAX_PER_EMAIL_PER_DAY: {
    schema: positiveInt,
    default: "10",
    doc: "Codes one email may be sent per day, whoever asks (with VERIFY_MAX_ATTEMPTS, at most this many times that many guesses a day).",
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
  NODE_PROBE_TIMEOUT_MS: {
    schema: positiveInt,
    default: "500",
    doc: "When a chat node's stream to status breaks, how long status waits for its gRPC port to answer: a refusal drops the node at once, no answer leaves it to NODE_TTL_MS.",
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
  INTERNAL_AUTH_TOKEN: {
    schema: z.string().refine((s) => s === "" || s.length >= 16, "at least 16 characters (or empty for no check)"),
    default: "",
    doc: "Shared secret of the cluster's internal gRPC (gate → status and verify, chat node → status, chat node → chat node): every call carries it and every service refuses a call without it. Empty: no check, allowed only while every gRPC listener is on loopback (a service with one beyond loopback and no token refuses to start). Make one with `openssl rand -hex 32`; it is a credential, not encryption (SECURITY.md).",
  },
  INTERNAL_TLS_CA: {
    schema: z.string(),
    default: "",
    doc: "Mutual TLS of the internal gRPC: the CA certificate (PEM file) that signed every service's certificate. With INTERNAL_TLS_CERT and INTERNAL_TLS_KEY set too, every gRPC listener asks callers for a certificate of this CA and every call presents this service's; `ops/make-internal-certs.sh` makes them. Empty (all three): plaintext.",
  },
  INTERNAL_TLS_CERT: {
    schema: z.string(),
    default: "",
    doc: "Mutual TLS: this service's certificate (PEM file), valid for the names other services call it by.",
  },
  INTERNAL_TLS_KEY: { schema: z.string(), default: "", doc: "Mutual TLS: this service's private key (PEM file)." },
  TOKEN_TTL_SECONDS: { schema: positiveInt, default: "86400", doc: "How long a login token opens a chat session." },
  CLOCK_BACKWARDS_TOLERANCE_MS: {
    schema: z.coerce.number().int().min(0),
    default: "5",
    doc: "Snowflake ids: a clock step backwards up to this long is waited out; a longer one makes id issuing fail (UNAVAILABLE) until the clock catches up.",
  },
  WORKER_LEASE_TTL_MS: {
    schema: positiveInt,
    default: "30000",
    doc: "Lease on a snowflake worker id in Redis, renewed every third of it; a process that loses it, or cannot renew in time, stops issuing ids until it leases a free id again.",
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
  CHAT_GRPC_HOST: {
    schema: z.string(),
    default: "127.0.0.1",
    doc: "Address the chat node's node-to-node gRPC listens on, apart from its client listeners (CHAT_HOST): loopback unless set. Beyond loopback it needs INTERNAL_AUTH_TOKEN (the node refuses to start without it); open it to the cluster's network only.",
  },
  CHAT_GRPC_PUBLIC_HOST: {
    schema: z.string(),
    default: "",
    doc: "Host other chat nodes reach this node's gRPC at (e.g. its container name). Empty: CHAT_GRPC_HOST, or when that is a wildcard (0.0.0.0, ::) CHAT_PUBLIC_HOST, else CHAT_HOST.",
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
  CHAT_PUSH_ACK_TIMEOUT_MS: {
    schema: positiveInt,
    default: "10000",
    doc: "A message pushed to a session and not acked by it within this time is pushed again (at-least-once delivery).",
  },
  CHAT_ACK_FLUSH_MS: {
    schema: z.coerce.number().int().min(0).max(60_000),
    default: "100",
    doc: "Delivery acks are held on the chat node and written to storage in one batch this often (a sync writes its user's first). A crash loses at most this much cursor movement: those messages are delivered again and the client drops them by seq. 0: each ack is written before its reply.",
  },
  CHAT_UNACKED_PUSH_MAX: {
    schema: positiveInt,
    default: "1000",
    doc: "Unacked pushes a node remembers per session for re-pushing; beyond that the oldest are forgotten (the client still gets them by sync, since its cursor did not move).",
  },
  CHAT_UNACKED_RETAIN_MS: {
    schema: positiveInt,
    default: "300000",
    doc: "How long a closed session's unacked pushes are kept for its user's next login on this node, which gets them pushed again right after the login reply.",
  },
  GROUP_MAX_MEMBERS: {
    schema: positiveInt,
    default: "5000",
    doc: "Most members in one group (create and invite beyond it answer GROUP_TOO_LARGE).",
  },
  BLOCKS_MAX: {
    schema: positiveInt,
    default: "1000",
    doc: "Most users one user may block (a block beyond it answers FRIEND_LIMIT).",
  },
  REPORT_REASON_MAX_CHARS: {
    schema: positiveInt,
    default: "500",
    doc: "Longest reason of a report of a user or a message.",
  },
  REPORTS_PER_DAY: {
    schema: positiveInt,
    default: "50",
    doc: "Most reports one user files a day (RATE_LIMITED beyond).",
  },
  GROUP_MUTE_MAX_SECONDS: {
    schema: positiveInt,
    default: "2592000",
    doc: 'Longest timed mute of a group member (30 days); longer is "until unmuted" (forever).',
  },
  GROUP_ANNOUNCEMENT_MAX_CHARS: {
    schema: positiveInt,
    default: "1000",
    doc: "Longest group announcement.",
  },
  GROUP_DISSOLVE_HISTORY: {
    schema: z.enum(["keep", "remove"]),
    default: "keep",
    doc: "What dissolving a group does to its messages: keep (members still read the history) or remove (deleted with the group).",
  },
  GROUP_JOIN_REQUEST_TTL_SECONDS: {
    schema: positiveInt,
    default: "604800",
    doc: "How long a request to join a group that requires approval stays open (7 days).",
  },
  GROUP_JOIN_MESSAGE_MAX_CHARS: {
    schema: positiveInt,
    default: "200",
    doc: "Longest message of a request to join a group.",
  },
  MESSAGE_RECALL_WINDOW_SECONDS: {
    schema: nonNegativeInt,
    default: "120",
    doc: "How long after sending its sender may recall a message (group admins and the owner may at any time); 0: never.",
  },
  MESSAGE_EDIT_WINDOW_SECONDS: {
    schema: nonNegativeInt,
    default: "900",
    doc: "How long after sending its sender may edit a message; 0: never.",
  },
  MESSAGE_REACTIONS_MAX_DISTINCT: {
    schema: positiveInt,
    default: "20",
    doc: "Most different reactions on one message (a new one beyond it answers REACTION_LIMIT).",
  },
  MESSAGE_REACTION_MAX_CHARS: {
    schema: z.coerce.number().int().min(1).max(COLUMN_CHARS.reaction),
    default: "8",
    doc: `Longest reaction, in characters (one emoji, with its modifiers; at most ${COLUMN_CHARS.reaction}, the column width).`,
  },
  MESSAGE_MENTIONS_MAX: {
    schema: positiveInt,
    default: "50",
    doc: "Most members one group message mentions.",
  },
  MESSAGE_CUSTOM_MAX_BYTES: {
    schema: positiveInt,
    default: "8192",
    doc: "Largest JSON payload of a custom message, in bytes (UTF-8); beyond it PAYLOAD_TOO_LARGE.",
  },
  MESSAGE_CUSTOM_TYPE_MAX_CHARS: {
    schema: positiveInt,
    default: "32",
    doc: "Longest type name of a custom message.",
  },
  MESSAGE_DELETE_FOR_ME_MAX: {
    schema: positiveInt,
    default: "100",
    doc: "Most messages one delete-for-me request names.",
  },
  MESSAGE_TTL_SECONDS: {
    schema: z.coerce.number().int().min(0).max(4_294_967_295),
    default: "0",
    doc: "Retention: messages are deleted this long after they were sent (a group's own TTL, group_set_retention, replaces it); 0: kept forever.",
  },
  RETENTION_PURGE_INTERVAL_MS: {
    schema: positiveInt,
    default: "60000",
    doc: "How often the retention purge looks for expired messages (one pass per database instance, run by one chat node at a time).",
  },
  RETENTION_PURGE_BATCH: {
    schema: positiveInt,
    default: "500",
    doc: "Most messages one purge transaction deletes (a conversation with more expired goes in several).",
  },
  RETENTION_PURGE_CONVERSATIONS_PAGE: {
    schema: positiveInt,
    default: "1000",
    doc: "Most conversations one query of a purge pass looks at.",
  },
  ACCOUNT_DELETE_MESSAGES: {
    schema: z.enum(["keep", "erase"]),
    default: "keep",
    doc: 'What deleting an account does to the messages it sent: keep (others still read them, from a "deleted user") or erase (emptied as a recall does, in every conversation it was in). Gate\'s setting: recorded with each deletion request, which the chat nodes carry out.',
  },
  ACCOUNT_DELETE_BATCH: {
    schema: positiveInt,
    default: "500",
    doc: "Most messages one transaction of an account deletion erases (ACCOUNT_DELETE_MESSAGES=erase).",
  },
  ACCOUNT_DELETION_POLL_MS: {
    schema: positiveInt,
    default: "5000",
    doc: "How often the chat nodes look for account deletions gate recorded and carry them out (friendships, groups, blocks, messages; one pass per database instance, run by one chat node at a time).",
  },
  // Images (issue 19): previews of uploaded images (src/files/images.ts).
  IMAGE_THUMB_MAX_PX: {
    schema: z.coerce.number().int().min(16).max(4096),
    default: "320",
    doc: "An image's thumbnail (WebP, stored beside it) fits inside this many pixels wide and high, aspect kept; a smaller image is not enlarged.",
  },
  IMAGE_MAX_PIXELS: {
    schema: positiveInt,
    default: "40000000",
    doc: "Largest image (width × height of one frame, read from its header before any decoding) that gets a thumbnail; a larger one gets its dimensions only, so no upload can make gate decode an arbitrarily large bitmap.",
  },
  IMAGE_MAX_FRAMES: {
    schema: positiveInt,
    default: "500",
    doc: "An animated GIF or WebP with more frames than this gets its dimensions only, no thumbnail (which is otherwise a still of its first frame).",
  },
  IMAGE_MAX_BYTES: {
    schema: positiveInt,
    default: "26214400",
    doc: "Largest image file (bytes, 25 MiB) gate reads to describe; a larger one gets no dimensions and no thumbnail, and is not read past this.",
  },
  IMAGE_TIMEOUT_SECONDS: {
    schema: z.coerce.number().int().min(1).max(3600),
    default: "10",
    doc: "Longest time the decoder may spend making one thumbnail; past it the image is treated as undecodable (no dimensions, no thumbnail).",
  },
  MEDIA_MAX_DURATION_MS: {
    schema: z.coerce.number().int().min(1).max(86_400_000),
    default: "3600000",
    doc: "Longest recording length (durationMs, e.g. a voice message's) a client may declare when it uploads an audio or video file; more answers INVALID_ARGUMENT. Gate does not decode recordings: the length is the client's, shown by players before they load the file.",
  },
  // Push notifications (issue 18).
  PUSH_DEVICES_PER_USER: {
    schema: z.coerce.number().int().min(1).max(1000),
    default: "10",
    doc: "Most push devices one user keeps registered (PUT /v1/push/devices); registering one more drops the least recently registered (a reinstalled app or browser leaves its old registration behind).",
  },
  PUSH_TOKEN_MAX_BYTES: {
    schema: z.coerce.number().int().min(64).max(16384),
    default: "4096",
    doc: "Longest device token gate accepts, in bytes (a Web Push subscription's JSON: endpoint URL and keys; an FCM or APNs token): a longer one answers PAYLOAD_TOO_LARGE.",
  },
  PUSH_QUEUE_MAX: {
    schema: positiveInt,
    default: "10000",
    doc: "Offline recipients a chat node holds waiting for their push notification; past it more are dropped and counted (shardchat_push_queue_dropped_total): the fan-out never waits for push services, and the messages themselves reach the apps by sync.",
  },
  PUSH_OFFLINE_DEVICE_KINDS: {
    schema: bool,
    default: "true",
    doc: "Push a user's devices of a kind it has no session of (desktop, web, mobile: a phone while its user is on the desktop), not only users with no session at all. false: only users with no session anywhere are pushed, and the fan-out does not look at device kinds.",
  },
  PUSH_DEVICE_CACHE_MS: {
    schema: z.coerce.number().int().min(0).max(3_600_000),
    default: "30000",
    doc: "How long a chat node keeps a user's push devices after reading them (one read per user per this long, not per message); a device registered meanwhile is pushed from its end on. 0: read them for every notification.",
  },
  PUSH_DEVICE_CACHE_MAX: {
    schema: positiveInt,
    default: "100000",
    doc: "Users whose push devices a chat node keeps (PUSH_DEVICE_CACHE_MS); past it the least recently used are forgotten.",
  },
  PUSH_CONCURRENCY: {
    schema: z.coerce.number().int().min(1).max(1000),
    default: "16",
    doc: "Offline recipients a chat node works on at once (each: its devices, its conversation list for mute and badge, one request per device to its push service).",
  },
  PUSH_SHOW_PREVIEW: {
    schema: bool,
    default: "false",
    doc: "Push notifications carry a preview of the message (its text, a file's name); false: only \"New message\" (the title still names the sender or the group). Off by default: FCM and APNs payloads pass through Google's and Apple's servers unencrypted, and a lock screen shows them to whoever holds the phone.",
  },
  PUSH_PREVIEW_MAX_CHARS: {
    schema: z.coerce.number().int().min(1).max(500),
    default: "120",
    doc: "Longest preview in a push notification (PUSH_SHOW_PREVIEW), in characters; longer text is cut with an ellipsis.",
  },
  PUSH_TTL_SECONDS: {
    schema: z.coerce.number().int().min(0).max(2_419_200),
    default: "86400",
    doc: "How long a push service keeps a notification for a device it cannot reach (Web Push TTL, FCM ttl, apns-expiration); 0: deliver now or never. The message itself is stored and reaches the app by sync.",
  },
  PUSH_SEND_TIMEOUT_MS: {
    schema: positiveInt,
    default: "10000",
    doc: "Longest wait for a push service's answer to one notification, then counted as failed (Web Push: the longest silence on its request's connection).",
  },
  WEB_PUSH_VAPID_PUBLIC_KEY: {
    schema: z.string().regex(/^[A-Za-z0-9_-]*$/, "URL-safe base64"),
    default: "",
    doc: "Web Push (VAPID) public key, URL-safe base64 of the P-256 point (`npm run push:vapid-keys` makes a pair); gate hands it to browsers (GET /v1/push/config). Empty: no Web Push. The chat nodes need it with WEB_PUSH_VAPID_PRIVATE_KEY and WEB_PUSH_SUBJECT (one without the others stops their start); gate needs only this one.",
  },
  WEB_PUSH_VAPID_PRIVATE_KEY: {
    schema: z.string().regex(/^[A-Za-z0-9_-]*$/, "URL-safe base64"),
    default: "",
    doc: "Web Push (VAPID) private key, URL-safe base64 (the chat nodes sign each request with it). Keep it secret; a new pair invalidates every browser's subscription.",
  },
  WEB_PUSH_SUBJECT: {
    schema: z.string().refine((v) => v === "" || /^(mailto:|https:\/\/)\S+$/.test(v), "mailto: or https: URL"),
    default: "",
    doc: "Web Push contact the push services may reach the operator at (VAPID `sub`): a mailto: or https: URL; required with the VAPID keys.",
  },
  WEB_PUSH_ENDPOINT_HOSTS: {
    schema: z.string(),
    default: "fcm.googleapis.com,updates.push.services.mozilla.com,web.push.apple.com,*.notify.windows.com",
    doc: "Hosts a Web Push subscription's endpoint may name (comma-separated; *.example.com: its subdomains), https only: a subscription comes from a client, so without this list a user could make the chat nodes POST to any address. The default: the push services of Chrome, Firefox, Safari and Edge.",
  },
  FCM_SERVICE_ACCOUNT_FILE: {
    schema: z.string(),
    default: "",
    doc: "FCM HTTP v1: the Firebase project's service account key file (JSON from the console: client_email, private_key, token_uri, project_id), read at start on the chat nodes; a file missing a field stops the process. Empty: no FCM.",
  },
  FCM_ENDPOINT: {
    schema: z.string().url(),
    default: "https://fcm.googleapis.com",
    doc: "FCM HTTP v1 base URL; messages go to <this>/v1/projects/<project_id>/messages:send (a private endpoint or a test server).",
  },
  APNS_KEY_FILE: {
    schema: z.string(),
    default: "",
    doc: "APNs token-based authentication: the .p8 key file (EC P-256) from Apple's developer account, read at start on the chat nodes; needs APNS_KEY_ID, APNS_TEAM_ID and APNS_TOPIC. Empty: no APNs.",
  },
  APNS_KEY_ID: {
    schema: z.string().regex(/^[A-Za-z0-9]*$/, "letters and digits"),
    default: "",
    doc: "APNs: the key's id (10 characters, shown with the key), the JWT's kid.",
  },
  APNS_TEAM_ID: {
    schema: z.string().regex(/^[A-Za-z0-9]*$/, "letters and digits"),
    default: "",
    doc: "APNs: the developer team's id (10 characters), the JWT's iss.",
  },
  APNS_TOPIC: {
    schema: z.string().regex(/^[A-Za-z0-9.-]*$/, "a bundle id"),
    default: "",
    doc: "APNs: the app's bundle id (apns-topic), e.g. com.example.chat.",
  },
  APNS_HOST: {
    schema: z.string().regex(/^[A-Za-z0-9.-]+(:\d{1,5})?$/, "host or host:port"),
    default: "api.push.apple.com",
    doc: "APNs server (host or host:port, HTTPS over HTTP/2): api.push.apple.com for apps from the App Store and TestFlight, api.sandbox.push.apple.com for development builds (a token of one is BadDeviceToken at the other, and is dropped).",
  },
  APNS_CA_FILE: {
    schema: z.string(),
    default: "",
    doc: "APNs: an extra CA certificate (PEM file) trusted for APNS_HOST besides Node's bundled CAs, for a private or test server. Empty: Node's CAs only.",
  },
  // Webhooks (issue 18): README "Webhooks".
  WEBHOOK_ENDPOINTS: {
    schema: z.string().superRefine((value, ctx) => {
      try {
        parseEndpoints(value);
      } catch (err) {
        ctx.addIssue({ code: "custom", message: (err as Error).message });
      }
    }),
    default: "",
    doc: 'Webhook endpoints per event type: rules separated by ";", each `<events>=<urls>` (events: a comma list of types, `group.*` for a family, `*` for all; urls: http(s) URLs separated by spaces), e.g. `message.after_send,user.online=http://a/hook http://b/hook; group.*=http://c/hook`. Empty: no webhook events are recorded or sent, and messages are stored without an outbox row.',
  },
  WEBHOOK_SECRET: {
    schema: z.string(),
    default: "",
    doc: "The key every webhook call is signed with (HMAC-SHA256, Standard Webhooks: `whsec_<base64>` or any other text, used as its bytes). Required when WEBHOOK_ENDPOINTS or WEBHOOK_BEFORE_SEND_URL is set.",
  },
  WEBHOOK_TIMEOUT_MS: {
    schema: positiveInt,
    default: "5000",
    doc: "Longest wait for a webhook endpoint's answer to one event; past it the attempt failed and is retried.",
  },
  WEBHOOK_MAX_ATTEMPTS: {
    schema: z.coerce.number().int().min(1).max(1000),
    default: "15",
    doc: "Attempts per webhook event and endpoint before the event is marked dead (kept in webhook_outbox, logged, counted in shardchat_webhook_dead_total) and its conversation's later events go on.",
  },
  WEBHOOK_RETRY_BASE_MS: {
    schema: positiveInt,
    default: "1000",
    doc: "Wait before a failed webhook event's second attempt; it doubles with each failure (with jitter) up to WEBHOOK_RETRY_MAX_MS. The conversation's later events wait meanwhile.",
  },
  WEBHOOK_RETRY_MAX_MS: {
    schema: positiveInt,
    default: "300000",
    doc: "Longest wait between two attempts of a webhook event.",
  },
  WEBHOOK_BATCH: {
    schema: z.coerce.number().int().min(1).max(5000),
    default: "200",
    doc: "Most outbox rows one dispatch pass reads from a database instance (their conversations are sent side by side, each in order).",
  },
  WEBHOOK_POLL_MS: {
    schema: positiveInt,
    default: "200",
    doc: "How often the webhook dispatcher looks for new events on each database instance (at once again after a full batch).",
  },
  WEBHOOK_LEASE_MS: {
    schema: positiveInt,
    default: "10000",
    doc: "The lease a chat node process holds on a database instance's webhook outbox while it dispatches it (renewed as it works): after its process dies, another takes the instance over within this long.",
  },
  WEBHOOK_TIMESTAMP_TOLERANCE_SECONDS: {
    schema: positiveInt,
    default: "300",
    doc: 'For receivers (README "Webhooks"): how far a call\'s webhook-timestamp may be from their clock before they refuse it as a replay. Not used by the server; its value is what the documentation and the verification example assume.',
  },
  WEBHOOK_BEFORE_SEND_URL: {
    schema: z.string().superRefine((value, ctx) => {
      if (value === "") return;
      try {
        checkUrl(value);
      } catch (err) {
        ctx.addIssue({ code: "custom", message: (err as Error).message });
      }
    }),
    default: "",
    doc: "Asked before every 1:1 and group message is stored, with the would-be message (signed as the other webhooks); it answers allow, reject (the sender gets MESSAGE_REJECTED, nothing is stored) or rewrite (the stored and delivered text). Empty: no check, at no cost.",
  },
  WEBHOOK_BEFORE_SEND_TIMEOUT_MS: {
    schema: positiveInt,
    default: "2000",
    doc: "Longest wait for the before-send hook's answer (the sender's ack waits for it).",
  },
  WEBHOOK_BEFORE_SEND_FAIL_OPEN: {
    schema: bool,
    default: "false",
    doc: "When the before-send hook fails (timeout, error, an answer that is not allow, reject or rewrite): true stores the message unchecked; false (the default) refuses it with UNAVAILABLE, so that nothing the hook would veto gets through while it is down, and the client sends it again later.",
  },
  // Bots (issue 18): README "Bots".
  BOTS_ENABLED: {
    schema: bool,
    default: "false",
    doc: "Chat nodes deliver messages to bots (accounts made with POST /admin/v1/bots) by signed bot.message webhooks: every stored message then gets an outbox row in its transaction, and the dispatcher runs. Needs WEBHOOK_SECRET. false: bots made by the Server API receive nothing, and the hot path pays nothing.",
  },
  BOTS_CACHE_MS: {
    schema: positiveInt,
    default: "5000",
    doc: "How long the webhook dispatcher keeps the list of bots and each group's bot members before reading them again: a new bot, a changed webhook URL, a deleted bot or a bot joining a group counts from at most this long later.",
  },
  BOT_WEBHOOK_URL_MAX_CHARS: {
    schema: z.coerce.number().int().min(16).max(2048),
    default: "2048",
    doc: "Longest webhook URL a bot may have (the bots table's column holds 2048).",
  },
  BOTS_WEBHOOK_HOSTS: {
    schema: z.string(),
    default: "",
    doc: 'Gate: the hosts a bot\'s webhook URL may name, comma separated (`bots.example.com`, or `*.example.com` for its subdomains), checked when a bot is made or changed. Empty: any host, internal ones too: the chat nodes POST to whatever URL a key holder set (README "Bots", on SSRF).',
  },
  TYPING_TTL_MS: {
    schema: positiveInt,
    default: "6000",
    doc: 'How long a client shows a typing indicator after its last TypingPush (no "stopped" frame is sent).',
  },
  TYPING_MIN_INTERVAL_MS: {
    schema: nonNegativeInt,
    default: "2000",
    doc: "Typing requests of one session in one conversation closer together than this are dropped (not pushed).",
  },
  GROUP_MEMBERS_PAGE: {
    schema: positiveInt,
    default: "500",
    doc: "Most members in one group_members reply (larger groups are paged by uid).",
  },
  GROUP_NAME_MAX_CHARS: {
    schema: z.coerce.number().int().min(1).max(COLUMN_CHARS.groupName),
    default: String(COLUMN_CHARS.groupName),
    doc: `Longest group name, in characters (at most ${COLUMN_CHARS.groupName}, the column width).`,
  },
  GROUP_JOIN_CONSENT: {
    schema: z.enum(["invitation", "friends", "none"]),
    default: "invitation",
    doc: "Who joins a group without accepting: invitation = nobody (each invitee accepts with group_invitation_reply); friends = the inviter's friends, others accept; none = everyone an admin adds (no consent: only for closed deployments and load tests).",
  },
  GROUP_INVITATION_TTL_SECONDS: {
    schema: positiveInt,
    default: "604800",
    doc: "How long a group invitation stays open (7 days); inviting again renews it.",
  },
  GROUP_CREATES_PER_DAY: {
    schema: positiveInt,
    default: "20",
    doc: "Groups one user may create per day (counted in the shared limiter); more are answered RATE_LIMITED.",
  },
  GROUP_INVITES_PER_DAY: {
    schema: positiveInt,
    default: "500",
    doc: "Users one user may invite into groups per day, over all groups (each invitee counts, also one who joins at once); an invite past it is refused whole with RATE_LIMITED.",
  },
  GROUP_LIST_PAGE: {
    schema: positiveInt,
    default: "200",
    doc: "Most groups in one group_list reply and most invitations in one group_invitations reply (longer lists are paged); most join requests in one group_join_requests reply.",
  },
  CHAT_USER_MSGS_PER_SECOND: {
    schema: positiveInt,
    default: "20",
    doc: "Messages one user may send per second over all their connections (counted in Redis); more are answered RATE_LIMITED and the connection stays up.",
  },
  CHAT_CONN_MSGS_PER_SECOND: {
    schema: positiveInt,
    default: "10",
    doc: "Messages one connection may send per second (counted on the node); more are answered RATE_LIMITED and the connection stays up.",
  },
  CHAT_PUBLIC_TCP_PORT: {
    schema: port,
    default: "0",
    doc: "TCP port clients are told to connect to when a proxy sits in front (nginx's stream port for this node). 0: CHAT_TCP_PORT as bound.",
  },
  CHAT_PUBLIC_WS_URL: {
    schema: z.string().refine((v) => v === "" || /^wss?:\/\/[^/]+/.test(v), "ws://host[:port][/path] or empty"),
    default: "",
    doc: "WebSocket URL base announced to clients when a proxy sits in front (e.g. ws://proxy/ws): the login answer names `<base>/<nodeId>`. Empty: the node's own ws://host:port/.",
  },
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
  CHAT_CONN_REQUESTS_PER_SECOND: {
    schema: positiveInt,
    default: "50",
    doc: "Requests per second one connection may make besides message sends and acks (heartbeats, sync, history, lists, searches, friend and group requests): RATE_LIMITED past it, the connection stays up.",
  },
  CHAT_CONN_SEARCHES_PER_MINUTE: {
    schema: positiveInt,
    default: "30",
    doc: "User searches per minute one connection may make (each asks every shard): RATE_LIMITED past it.",
  },
  CHAT_LOGINS_PER_SECOND: {
    schema: positiveInt,
    default: "500",
    doc: "Logins one chat node admits per second (a token bucket, refilled at this rate): a failover or a node add sends every moved user at once, and past this a login is answered RATE_LIMITED before it costs status, Redis or MySQL anything; the SDK comes back after a jittered pause. The sessions already on the node keep their latency.",
  },
  CHAT_LOGIN_BURST: {
    schema: positiveInt,
    default: "500",
    doc: "Logins a chat node admits at once before CHAT_LOGINS_PER_SECOND paces them (the token bucket's size).",
  },
  CHAT_ROUTE_RENEW_MIN_MS: {
    schema: positiveInt,
    default: "10000",
    doc: "Shortest time between two renewals of a session's route in Redis, however often its client sends heartbeats. Keep it well below ROUTE_TTL_SECONDS.",
  },
  CHAT_CLIENT_HEARTBEAT_MS: {
    schema: positiveInt,
    default: "20000",
    doc: "Heartbeat interval the node asks clients for.",
  },
  CHAT_SYNC_BATCH: { schema: positiveInt, default: "200", doc: "Most messages in one sync or history reply." },
  // Friends and conversations.
  CHAT_REQUIRE_FRIENDSHIP: {
    schema: bool,
    default: "false",
    doc: "Only friends may send each other 1:1 messages (others get NOT_FRIENDS). Off by default so any two users can talk (load tools, open communities); set true for a friends-only chat.",
  },
  FRIEND_APPLY_PER_DAY: {
    schema: positiveInt,
    default: "50",
    doc: "Friend applications one user may send per day (counted in Redis); more are answered RATE_LIMITED.",
  },
  FRIEND_APPLY_MAX_CHARS: {
    schema: positiveInt.refine(
      (n) => n <= COLUMN_CHARS.friendMessage,
      `at most ${COLUMN_CHARS.friendMessage} (the column's width)`,
    ),
    default: "200",
    doc: "Longest message of a friend application.",
  },
  FRIENDS_MAX: {
    schema: positiveInt,
    default: "2000",
    doc: "Most friends one user may have (an apply or accept beyond it answers FRIEND_LIMIT); also the size of a friend list reply.",
  },
  FRIEND_APPLICATIONS_MAX: {
    schema: positiveInt,
    default: "200",
    doc: "Most pending friend applications one reply lists (newest first).",
  },
  CHAT_PRESENCE_PUSH: {
    schema: bool,
    default: "true",
    doc: "Tell a user's online friends when its first device logs in and its last one leaves (presence_push): one friend-list read and one route lookup per friend at those moments. false: friends see presence only in the friend list.",
  },
  CHAT_SEARCH_MAX_RESULTS: { schema: positiveInt, default: "20", doc: "Most users one search answers." },
  CHAT_CONVERSATION_LIST_MAX: {
    schema: positiveInt,
    default: "200",
    doc: "Most conversations one conversation list reply carries (the most recently active).",
  },
  CHAT_MAX_SESSIONS: { schema: positiveInt, default: "100000", doc: "Most sessions one chat node accepts." },
  CHAT_MAX_PENDING_LOGINS: {
    schema: positiveInt,
    default: "10000",
    doc: "Connections of a chat node that have not logged in yet (each has CHAT_LOGIN_TIMEOUT_MS to do so); more are refused at once, so sockets that never log in cannot fill CHAT_MAX_SESSIONS.",
  },
  CHAT_MAX_CONNECTIONS_PER_ADDR: {
    schema: z.coerce.number().int().min(0),
    default: "0",
    doc: "Connections one client address may hold on a chat node; more are refused (RATE_LIMITED). 0: no cap, for nodes behind a proxy, where every client has the proxy's address (cap there: ops/nginx's limit_conn); set it on nodes clients reach directly (compose does).",
  },
  CHAT_MAX_OUTBOUND_BYTES: {
    schema: positiveInt,
    default: "4194304",
    doc: "Bytes a session may have queued for sending; a client that reads slower than that is disconnected.",
  },
  CHAT_MAX_IN_FLIGHT: {
    schema: positiveInt,
    default: "256",
    doc: "Requests of one session admitted and not answered yet (they run pipelined: in order per conversation, acks and heartbeats beside sends); more are answered RATE_LIMITED and the session stays up (before login it is closed).",
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
  CHAT_PEER_MAX_PENDING: {
    schema: positiveInt,
    default: "50000",
    doc: "Pushes a chat node holds for one peer node, queued or sent and not answered yet; more are not sent (their recipients get them by sync) until the peer catches up.",
  },
  CHAT_PEER_REPLY_TIMEOUT_MS: {
    schema: positiveInt,
    default: "3000",
    doc: "A peer node that leaves a batch of pushes unanswered this long is taken as stuck: the stream to it is reset and those recipients get the messages by sync.",
  },
  CHAT_OFFLINE_RECHECK_MAX: {
    schema: z.coerce.number().int().min(0).max(100_000),
    default: "16",
    doc: "A push finds recipients offline on the node the ring names: up to this many of them are still looked up in the session routes (a user may have just logged in on a node this one's ring does not know yet); a group's offline members beyond it are not, once the ring is settled (CHAT_RING_SETTLE_MS).",
  },
  CHAT_RING_SETTLE_MS: {
    schema: positiveInt,
    default: "10000",
    doc: "For this long after a chat node sees the ring change, every recipient the ring's node reports offline is looked up in the session routes.",
  },
  CHAT_RING_CHECK_MS: {
    schema: positiveInt,
    default: "1000",
    doc: "How often a chat node compares the ring (status's live nodes) with its sessions and sends a move push to every user another node owns now (a node joined or left).",
  },
  CHAT_KNOWN_USERS_MAX: {
    schema: positiveInt,
    default: "100000",
    doc: "How many uids a chat node remembers as existing (a send checks its recipient); at this many it forgets them all and reads again.",
  },
  CHAT_KNOWN_USERS_TTL_MS: {
    schema: positiveInt,
    default: "60000",
    doc: "A chat node also forgets the uids it remembers as existing this often, so an account deleted through another node stops being taken as a recipient within it.",
  },
  SHUTDOWN_TIMEOUT_MS: {
    schema: positiveInt,
    default: "10000",
    doc: "On SIGTERM or SIGINT a service closes its listeners and pools; if that takes longer than this (a chat node: after its drain), it exits anyway.",
  },
  CHAT_DRAIN_TIMEOUT_MS: {
    schema: positiveInt,
    default: "15000",
    doc: "On SIGTERM a chat node leaves the ring, pushes a move to each session and waits up to this long for them to go before it closes the rest.",
  },
  METRICS_HOST: {
    schema: z.string(),
    default: "127.0.0.1",
    doc: "Listen address of the /metrics, /healthz, /readyz server.",
  },
  METRICS_PORT: {
    schema: z
      .string()
      .regex(/^(\d{1,5})?$/, "a port or empty")
      .transform((v) => (v === "" ? null : Number(v))),
    default: "",
    doc: "Port of the ops HTTP server with /metrics, /healthz and /readyz, on every service (gate's public port has /healthz only; `npm start` serves one for the whole process); 0 picks a free one. Empty: none.",
  },
  READY_PROBE_TIMEOUT_MS: {
    schema: positiveInt,
    default: "1000",
    doc: "How long /readyz waits for each dependency (database shard, Redis, peer service) before calling it unreachable.",
  },
  TRACING_OTLP_URL: {
    schema: z.string().superRefine((value, ctx) => {
      if (value === "") return;
      try {
        const url = new URL(value);
        if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error("not http(s)");
      } catch {
        ctx.addIssue({ code: "custom", message: "an http(s) URL such as http://collector:4318/v1/traces, or empty" });
      }
    }),
    default: "",
    doc: "OpenTelemetry tracing: the OTLP/HTTP (JSON) traces endpoint spans are exported to, such as http://collector:4318/v1/traces (an OpenTelemetry Collector, Jaeger, Tempo). Empty: tracing is off and the OpenTelemetry SDK is not even loaded.",
  },
  TRACING_SAMPLE_RATIO: {
    schema: z.coerce.number().min(0).max(1),
    default: "1",
    doc: "With TRACING_OTLP_URL: the share of new traces recorded (0 to 1, by trace id). A request that arrives with a W3C traceparent follows its caller's decision instead, so a trace is kept or dropped whole across services.",
  },
  TRACING_EXPORT_INTERVAL_MS: {
    schema: positiveInt,
    default: "5000",
    doc: "With TRACING_OTLP_URL: how long ended spans wait to be exported together (one OTLP request per batch).",
  },
  TRACING_QUEUE_MAX: {
    schema: positiveInt,
    default: "2048",
    doc: "With TRACING_OTLP_URL: most ended spans a process holds for export; past it new spans are dropped (a collector that is down or slow costs spans, never memory without bound).",
  },
  STACK_CHAT_NODES: {
    schema: z.coerce.number().int().min(0).max(64),
    default: "0",
    doc: "`npm start`: how many chat nodes to run; node i uses the CHAT_*_PORT settings plus i-1. 0: one with ROUTING_BACKEND=memory, two with redis.",
  },
} as const;

export type SettingName = keyof typeof settings;
export type Config = { [K in SettingName]: z.output<(typeof settings)[K]["schema"]> };
