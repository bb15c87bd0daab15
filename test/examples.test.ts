import { type ChildProcessWithoutNullStreams, execFile, spawn } from "node:child_process";
import { promisify } from "node:util";
import { type ChatClient, type ChatMessage, GateClient, openChat } from "@shardchat/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EmbeddedServer, startEmbedded } from "./helpers/embedded-server.js";
import { ROOT, waitFor } from "./helpers/processes.js";

/**
 * examples/ run as a reader would run them (their own processes, settings from env and argv)
 * against `npm start`'s embedded server: the script's message arrives, the bot answers.
 */
const execFileAsync = promisify(execFile);
/** The examples import @shardchat/sdk by name: from its sources here, as README says. */
const NODE_ARGS = ["--conditions=shardchat-source", "--import", "tsx"];

let server: EmbeddedServer;
let alice: { uid: string; name: string; password: string };
let bob: { uid: string; name: string; password: string };
let echo: { uid: string; name: string; password: string };
const clients: ChatClient[] = [];
let bot: ChildProcessWithoutNullStreams | undefined;

function settingsOf(user: { name: string; password: string }): NodeJS.ProcessEnv {
  return {
    ...process.env,
    SHARDCHAT_GATE: server.gateUrl,
    SHARDCHAT_USER: user.name,
    SHARDCHAT_PASSWORD: user.password,
  };
}

async function chatAs(user: { name: string; password: string }): Promise<ChatClient> {
  const client = await openChat(await new GateClient(server.gateUrl).login(user.name, user.password), "ws");
  clients.push(client);
  return client;
}

/** The next message `client` gets that `match` accepts (listening starts now, before any send). */
function nextMessage(client: ChatClient, match: (m: ChatMessage) => boolean): Promise<ChatMessage> {
  return new Promise((resolve) => {
    const listener = (m: ChatMessage) => {
      if (!match(m)) return;
      client.off("message", listener);
      resolve(m);
    };
    client.on("message", listener);
  });
}

beforeAll(async () => {
  server = await startEmbedded("examples-embedded");
  alice = await server.register("alice");
  bob = await server.register("bob");
  echo = await server.register("echo");
});

afterAll(async () => {
  bot?.kill("SIGKILL");
  for (const client of clients) await client.close().catch(() => {});
  await server?.stop();
});

describe("examples/", () => {
  it("send-message.ts sends one message that the recipient receives", async () => {
    const b = await chatAs(bob);
    const arriving = nextMessage(b, (m) => m.sender === alice.uid);
    const run = await execFileAsync(
      process.execPath,
      [...NODE_ARGS, "examples/send-message.ts", bob.uid, "hello", "from", "the", "example"],
      { cwd: ROOT, env: settingsOf(alice) },
    );
    const got = await arriving;
    expect(got).toMatchObject({ sender: alice.uid, recipient: bob.uid, text: "hello from the example" });
    expect(run.stdout).toContain(`sent ${got.msgId}: seq ${got.seq} of ${got.convId}`);
  });

  it("echo-bot.ts answers a message sent to it", async () => {
    const started = spawn(process.execPath, [...NODE_ARGS, "examples/echo-bot.ts"], {
      cwd: ROOT,
      env: settingsOf(echo),
    });
    bot = started;
    let output = "";
    started.stdout.on("data", (chunk) => {
      output += chunk;
    });
    started.stderr.on("data", (chunk) => {
      output += chunk;
    });
    await waitFor(
      "the bot to listen",
      () => {
        if (started.exitCode !== null) throw new Error(`the bot exited with ${started.exitCode}: ${output}`);
        return output.includes(`echo bot ${echo.uid} is listening`);
      },
      60_000,
    );

    const a = await chatAs(alice);
    const answer = nextMessage(a, (m) => m.sender === echo.uid);
    await a.sendText(echo.uid, "ping 42");
    expect(await answer).toMatchObject({ sender: echo.uid, recipient: alice.uid, text: "echo: ping 42" });

    // It stops cleanly on SIGTERM, as a service manager would stop it.
    const exited = new Promise<number | null>((resolve) => started.once("exit", (code) => resolve(code)));
    started.kill("SIGTERM");
    expect(await exited).toBe(0);
  });
});
