import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { AppError, errorName } from "../errors.js";
import type { ChatMessage } from "../gen/shardchat/v1/client.js";
import { GateClient } from "../sdk/gate-client.js";
import { openChat, type Transport } from "../sdk/open-chat.js";

const usage = `shardchat terminal client

  npm run cli -- code <email>                                ask gate to mail a verify code
  npm run cli -- register <user> <email> <password> <code>   create an account
  npm run cli -- reset <email> <password> <code>             set a new password
  npm run cli -- chat <user|email> <password>                log in, print what arrives; type "<uid> <text>" to send
  npm run cli -- send <user|email> <password> <uid> <text>   send one message and exit

options: --gate URL (default http://127.0.0.1:8080 or $GATE_URL), --transport tcp|ws|ws-json (default tcp)`;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    gate: { type: "string", default: process.env.GATE_URL ?? "http://127.0.0.1:8080" },
    transport: { type: "string", default: "tcp" },
    help: { type: "boolean", short: "h" },
  },
});

const [command, ...args] = positionals;
const gate = new GateClient(values.gate);
const transport = values.transport as Transport;

function show(m: ChatMessage): string {
  return `[${m.convId} #${m.seq}] ${m.sender}: ${m.text}`;
}

async function run(): Promise<void> {
  switch (command) {
    case "code": {
      await gate.requestVerifyCode(need(args[0], "email"));
      console.log("code sent: check the mail (or, without SMTP, the server log)");
      return;
    }
    case "register": {
      const [user, email, password, code] = args;
      const { uid } = await gate.register({
        user: need(user, "user"),
        email: need(email, "email"),
        password: need(password, "password"),
        code: need(code, "code"),
      });
      console.log(`registered uid ${uid}`);
      return;
    }
    case "reset": {
      const [email, password, code] = args;
      await gate.resetPassword({
        email: need(email, "email"),
        password: need(password, "password"),
        code: need(code, "code"),
      });
      console.log("password changed");
      return;
    }
    case "send":
    case "chat": {
      const login = await gate.login(need(args[0], "user or email"), need(args[1], "password"));
      const chat = await openChat(login, transport);
      console.log(`logged in as uid ${login.uid} on ${login.nodeId} (${transport})`);
      for (const m of await chat.syncAll()) console.log(show(m));
      if (command === "send") {
        const ack = await chat.sendText(need(args[2], "uid"), need(args.slice(3).join(" ") || undefined, "text"));
        console.log(`stored as ${ack.msgId} (#${ack.seq} in ${ack.convId})`);
        await chat.close();
        return;
      }
      chat.on("message", (m) => console.log(show(m)));
      chat.on("kicked", (k) => console.log(`kicked: ${errorName(k.reason)} ${k.message}`));
      chat.on("close", (reason) => {
        console.log(`connection closed: ${reason}`);
        process.exit(0);
      });
      const lines = createInterface({ input: process.stdin });
      for await (const line of lines) {
        const match = /^(\d+)\s+(.+)$/.exec(line.trim());
        if (!match) {
          console.log('type "<uid> <text>"');
          continue;
        }
        const ack = await chat.sendText(match[1] as string, match[2] as string).catch((e: Error) => e);
        console.log(ack instanceof Error ? `not sent: ${ack.message}` : `sent #${ack.seq}`);
      }
      await chat.close();
      return;
    }
    default:
      console.log(usage);
      if (!values.help && command) process.exitCode = 2;
  }
}

function need(value: string | undefined, name: string): string {
  if (!value) {
    console.error(`missing ${name}\n\n${usage}`);
    process.exit(2);
  }
  return value;
}

run().catch((err: unknown) => {
  if (err instanceof AppError) console.error(`error ${err.code} ${errorName(err.code)}: ${err.message}`);
  else console.error(err);
  process.exitCode = 1;
});
