import { type ChildProcessWithoutNullStreams, execFile, spawn } from "node:child_process";
import { promisify } from "node:util";
import type { ChatClient } from "@shardchat/sdk";
import { expect } from "vitest";
import { ROOT } from "./processes.js";
import { type Services, startServices } from "./services.js";
import { until } from "./waits.js";

const execFileAsync = promisify(execFile);

export type CliUser = { uid: string; email: string; password: string };

/** A chat-mode session of the terminal client. */
export interface ChatMode {
  child: ChildProcessWithoutNullStreams;
  /** Resolves once `text` is in its output (stdout and stderr); the failure shows the output. */
  sees(text: string): Promise<void>;
}

/**
 * The CLI suites' setup: every service as its own process (two chat nodes), and the terminal
 * client run against them as its own process, as people run it.
 */
export interface TerminalClientRun {
  /** Starts the services and registers `names`, in that order. */
  start(tag: string, ...names: string[]): Promise<CliUser[]>;
  /** The services start() started. */
  readonly services: Services;
  /** SDK sessions of the users who watch; stop() closes them. */
  readonly clients: ChatClient[];
  /** One command; rejects when the CLI exits with an error. */
  cli(...args: string[]): Promise<{ stdout: string; stderr: string }>;
  /** A command the node refuses: its stderr (the CLI exits with 1). */
  refused(...args: string[]): Promise<string>;
  /** Chat mode as `name` on a mobile device, so that the desktop logins of cli() never take its place. */
  chatMode(name: string, password: string): ChatMode;
  /** Ends chat modes, closes the SDK sessions and stops the services. */
  stop(): Promise<void>;
}

export function terminalClientRun(): TerminalClientRun {
  let started: Services | undefined;
  const services = (): Services => {
    if (!started) throw new Error("the services are not started: call start() in beforeAll");
    return started;
  };
  const clients: ChatClient[] = [];
  const children: ChildProcessWithoutNullStreams[] = [];
  // The CLI imports @shardchat/sdk: from its sources, as `npm run cli` has it.
  const cliArgs = (args: string[]) => [
    "--conditions=shardchat-source",
    "--import",
    "tsx",
    "src/cli/main.ts",
    "--gate",
    services().gateUrl,
    ...args,
  ];

  const cli = (...args: string[]) => execFileAsync(process.execPath, cliArgs(args), { cwd: ROOT });
  return {
    async start(tag, ...names) {
      // Every command logs in again from this one address: the per-address login limit is
      // not what these tests are about, and a fast run would meet it.
      started = await startServices(tag, 2, { LOGIN_MAX_PER_ADDR_PER_MINUTE: 100_000 });
      const s = started;
      return Promise.all(names.map((n) => s.register(n)));
    },
    get services() {
      return services();
    },
    clients,
    cli,
    async refused(...args) {
      const outcome = await cli(...args).then(
        (r) => ({ ...r, failed: false }),
        (err: { stdout: string; stderr: string }) => ({ ...err, failed: true }),
      );
      expect(outcome.failed, outcome.stdout).toBe(true);
      return outcome.stderr;
    },
    chatMode(name, password) {
      const child = spawn(process.execPath, cliArgs(["--device", "mobile", "chat", name, password]), { cwd: ROOT });
      children.push(child);
      let out = "";
      const collect = (d: Buffer) => {
        out += d.toString("utf8");
      };
      child.stdout.on("data", collect);
      child.stderr.on("data", collect);
      const sees = (text: string) =>
        until(
          `"${text}" in chat mode`,
          () => out.includes(text),
          () => out,
        );
      return { child, sees };
    },
    async stop() {
      for (const child of children) child.kill();
      await Promise.all(clients.map((c) => c.close().catch(() => {})));
      await started?.stop();
    },
  };
}
