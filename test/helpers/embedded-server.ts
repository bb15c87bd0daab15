import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GateClient } from "@shardchat/sdk";
import { freePort } from "./ports.js";
import { LOG_DIR, type ServiceProcess, spawnService, waitFor } from "./processes.js";

/** Five-process start-up compiled by tsx on a busy 2-core machine. */
const STARTUP_MS = 60_000;

export interface EmbeddedServer {
  gateUrl: string;
  process: ServiceProcess;
  /** A verify code for `email`, requested now and read from the log (LogMailer). */
  verifyCode(email: string): Promise<string>;
  /** Registers `name` (email <name>@example.test, password pw-<name>-secret). */
  register(name: string): Promise<{ uid: string; name: string; password: string }>;
  stop(): Promise<void>;
}

/** The settings `npm start` gets in these tests: its data in `dataDir`, every port a free one. */
export async function embeddedEnv(dataDir: string): Promise<{ env: Record<string, string>; gateUrl: string }> {
  const gateUrl = `http://127.0.0.1:${await freePort()}`;
  const env = {
    DATA_DIR: dataDir,
    LOG_LEVEL: "info",
    GATE_PORT: new URL(gateUrl).port,
    CHAT_TCP_PORT: String(await freePort()),
    CHAT_WS_PORT: String(await freePort()),
    CHAT_GRPC_PORT: String(await freePort()),
    STATUS_ADDR: `127.0.0.1:${await freePort()}`,
    VERIFY_ADDR: `127.0.0.1:${await freePort()}`,
  };
  return { env, gateUrl };
}

/**
 * The launcher, as `npm start` runs it (without the install step), with `env`: answers once it
 * prints that it is running; killed if it exits or never gets there.
 */
export async function launchEmbedded(name: string, env: Record<string, string>): Promise<ServiceProcess> {
  // A previous run's log would answer "running" before this process wrote a line.
  rmSync(join(LOG_DIR, `${name}.log`), { force: true });
  const proc = spawnService(name, "src/main.ts", env);
  const log = () => readFileSync(proc.logFile, "utf8");
  try {
    await waitFor(
      `${name} to print that it is running`,
      () => {
        if (proc.child.exitCode !== null) throw new Error(`${name} exited with ${proc.child.exitCode}: ${log()}`);
        return log().includes("Every setting: npm start -- --help");
      },
      STARTUP_MS,
    );
  } catch (err) {
    await proc.stop("SIGKILL");
    throw err;
  }
  return proc;
}

/** The newest verify code LogMailer wrote for `email` in a log's text. */
export function codeFromLog(logText: string, email: string): string | undefined {
  let code: string | undefined;
  for (const line of logText.split("\n")) {
    if (!line.startsWith("{")) continue;
    const entry = JSON.parse(line) as { mail?: { to?: string; text?: string } };
    if (entry.mail?.to !== email) continue;
    code = /\b(\d{6})\b/.exec(entry.mail.text ?? "")?.[1] ?? code;
  }
  return code;
}

/**
 * `npm start` with no settings (SQLite in its own data dir, in-memory routing, codes in the log)
 * on free ports, as test/embedded-start.test.ts starts it.
 */
export async function startEmbedded(name: string): Promise<EmbeddedServer> {
  const dataDir = mkdtempSync(join(tmpdir(), `sc-${name}-`));
  const { env, gateUrl } = await embeddedEnv(dataDir);
  let proc: ServiceProcess;
  try {
    proc = await launchEmbedded(name, env);
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  const gate = new GateClient(gateUrl);
  const verifyCode = async (email: string) => {
    await gate.requestVerifyCode(email);
    return waitFor(`the code for ${email} in the log`, () => codeFromLog(readFileSync(proc.logFile, "utf8"), email));
  };
  return {
    gateUrl,
    process: proc,
    verifyCode,
    async register(user) {
      const email = `${user}@example.test`;
      const password = `pw-${user}-secret`;
      const { uid } = await gate.register({ user, email, password, code: await verifyCode(email) });
      return { uid, name: user, password };
    },
    async stop() {
      await proc.stop("SIGTERM");
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
