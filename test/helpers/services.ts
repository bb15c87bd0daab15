import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GateClient } from "@shardchat/sdk";
import type { Config } from "../../src/config/settings.js";
import { StatusServiceService } from "../../src/gen/shardchat/v1/status.js";
import { grpcClient } from "../../src/grpc/api.js";
import type { Uid } from "../../src/ids/identifiers.js";
import { migrate } from "../../src/storage/mysql/migrate.js";
import { configEnv, dropTestDatabase, testConfig } from "./env.js";
import { freePort } from "./ports.js";
import { type ServiceProcess, spawnService, waitFor } from "./processes.js";
import { codeFromMail, startSmtpSink } from "./smtp-sink.js";

/** Five `node --import tsx` processes compiling at once on a busy 2-core machine take a while. */
const START_TIMEOUT_MS = 90_000;

export interface Services {
  config: Config;
  gateUrl: string;
  gate: GateClient;
  smtp: Awaited<ReturnType<typeof startSmtpSink>>;
  /** FILE_STORE_DIR of this run. */
  fileDir: string;
  procs: ServiceProcess[];
  /** Registers a user through gate with the code mailed to the SMTP sink. */
  register(name: string): Promise<{ uid: Uid; email: string; password: string }>;
  stop(): Promise<void>;
}

/**
 * status, verify, gate and `chatNodes` chat nodes, each its own process (log names start with
 * `tag`), on this test file's MariaDB database and Redis prefix, mail to a local SMTP sink.
 */
export async function startServices(
  tag: string,
  chatNodes: number,
  overrides: Partial<Config> = {},
): Promise<Services> {
  const smtp = await startSmtpSink();
  const fileDir = mkdtempSync(join(tmpdir(), `sc-${tag}-files-`));
  const [gatePort, verifyPort, statusPort] = [await freePort(), await freePort(), await freePort()];
  const config = testConfig({
    SMTP_URL: smtp.url,
    VERIFY_COOLDOWN_SECONDS: 1,
    VERIFY_MAX_PER_ADDR_PER_HOUR: 1000,
    GATE_PORT: gatePort,
    VERIFY_ADDR: `127.0.0.1:${verifyPort}`,
    STATUS_ADDR: `127.0.0.1:${statusPort}`,
    NODE_HEARTBEAT_INTERVAL_MS: 500,
    NODE_TTL_MS: 3000,
    FILE_STORE_DIR: fileDir,
    ...overrides,
  });
  await migrate(config.MYSQL_URL);
  const env = configEnv(config);
  const procs: ServiceProcess[] = [];
  procs.push(spawnService(`${tag}-status`, "src/status/main.ts", env));
  procs.push(spawnService(`${tag}-verify`, "src/verify/main.ts", env));
  for (let n = 1; n <= chatNodes; n++) {
    procs.push(
      spawnService(`${tag}-chat-${n}`, "src/chat/main.ts", {
        ...env,
        CHAT_NODE_ID: `chat-${n}`,
        CHAT_TCP_PORT: String(await freePort()),
        CHAT_WS_PORT: String(await freePort()),
        CHAT_GRPC_PORT: String(await freePort()),
      }),
    );
  }
  procs.push(spawnService(`${tag}-gate`, "src/gate/main.ts", env));
  const gateUrl = `http://127.0.0.1:${gatePort}`;
  const gate = new GateClient(gateUrl);
  const status = grpcClient(StatusServiceService, config.STATUS_ADDR);
  // A service that exited while starting is named, with its log, in the error of the wait.
  const exited = () => {
    const dead = procs.find((p) => p.child.exitCode !== null);
    if (dead) throw new Error(`${dead.name} exited with ${dead.child.exitCode}: ${readFileSync(dead.logFile, "utf8")}`);
  };
  try {
    await waitFor(
      `${chatNodes} chat nodes registered`,
      async () => {
        exited();
        return (await status.api.listNodes({})).nodes.length === chatNodes;
      },
      START_TIMEOUT_MS,
    );
  } catch (err) {
    await Promise.all(procs.map((p) => p.stop()));
    throw err;
  } finally {
    status.close();
  }
  await waitFor(
    "gate",
    async () => {
      exited();
      return (await fetch(`${gateUrl}/healthz`).catch(() => null))?.ok === true;
    },
    START_TIMEOUT_MS,
  );

  return {
    config,
    gateUrl,
    gate,
    smtp,
    fileDir,
    procs,
    async register(name) {
      const email = `${name}@example.test`;
      const password = `pw-${name}-secret`;
      await gate.requestVerifyCode(email);
      const code = codeFromMail(await smtp.waitForMail(email));
      const { uid } = await gate.register({ user: name, email, password, code });
      return { uid, email, password };
    },
    async stop() {
      await Promise.all(procs.map((p) => p.stop()));
      await smtp.close();
      await dropTestDatabase(config);
      rmSync(fileDir, { recursive: true, force: true });
    },
  };
}
