import { createReadStream } from "node:fs";
import { stat, writeFile } from "node:fs/promises";
import { basename, extname } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import type { ChatMessage } from "@shardchat/sdk";
import { GateClient, openChat, type Transport } from "@shardchat/sdk";
import { AppError, errorName } from "../errors.js";
import { convIdForPair, requireUid } from "../ids/identifiers.js";
import { groupCommands, groupUsage, printGroupPushes, runGroupSlashCommand } from "./groups.js";
import { messageCommands, messageUsage, printer, printMessagePushes, runMessageSlashCommand } from "./messages.js";
import { printSafetyPushes, runSafetySlashCommand, safetyCommands, safetyUsage } from "./safety.js";
import { deviceOption, printSocialPushes, runSlashCommand, socialCommands, socialUsage } from "./social.js";

const usage = `shardchat terminal client

  npm run cli -- code <email>                                ask gate to mail a verify code
  npm run cli -- register <user> <email> <password> <code>   create an account
  npm run cli -- reset <email> <password> <code>             set a new password
  npm run cli -- chat <user|email> <password>                log in, print what arrives; type "<uid> <text>" to send
  npm run cli -- send <user|email> <password> <uid> <text>   send one message and exit
  npm run cli -- sendfile <user|email> <password> <uid> <path> [caption]   upload a file to gate, send it as a message
  npm run cli -- download <user|email> <password> <file id> [path]        save a file of one of your conversations
  npm run cli -- delete-account <user|email> <password>      delete your account for good (the password again)

Friends and conversations (log in, run, exit; in chat mode type them as "/<command> ..."):
${socialUsage("cli")}

Groups and their moderation (the same way; in chat mode "/gsend <group id> <text>" posts to a group):
${groupUsage("cli")}

Blocking, reports and your own conversation settings (the same way; in chat mode "/block 42"):
${safetyUsage("cli")}

Replies, reactions, edits, recalls, forwards (the same way; <convId> and #seq as messages print them,
"[p:1:2 #4]"; in chat mode "/react p:1:2 4 👍"):
${messageUsage("cli")}

options: --gate URL (default http://127.0.0.1:8080 or $GATE_URL), --transport tcp|ws|ws-json (default tcp),
  --device desktop|web|mobile (one session per kind; default desktop over tcp, web over ws)`;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    gate: { type: "string", default: process.env.GATE_URL ?? "http://127.0.0.1:8080" },
    transport: { type: "string", default: "tcp" },
    device: { type: "string", default: "" },
    help: { type: "boolean", short: "h" },
  },
});

const [command, ...args] = positionals;
const gate = new GateClient(values.gate);
const transport = values.transport as Transport;
const device = deviceOption(values.device);

/** A content type from the extension, for gate's allow-list (gate does not sniff the bytes). */
const TYPES: Record<string, string> = {
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".webp": "image/webp",
  ".pdf": "application/pdf",
  ".txt": "text/plain",
  ".zip": "application/zip",
};

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
    case "sendfile": {
      const login = await gate.login(need(args[0], "user or email"), need(args[1], "password"));
      const to = requireUid(need(args[2], "uid"), "uid");
      const path = need(args[3], "path");
      const contentType = TYPES[extname(path).toLowerCase()] ?? "application/octet-stream";
      // Resumable (tus), streamed from disk: a large file never sits in memory whole.
      const source = { stream: createReadStream(path), size: (await stat(path)).size };
      const convId = convIdForPair(requireUid(login.uid, "uid"), to);
      const file = await gate.uploadResumable(login, convId, source, basename(path), { contentType });
      const chat = await openChat(login, transport, { device });
      try {
        const ack = await chat.sendFile(to, file, args.slice(4).join(" "));
        console.log(`uploaded ${file.id} (${file.size} bytes), sent as #${ack.seq} in ${ack.convId}`);
      } finally {
        await chat.close();
      }
      return;
    }
    case "delete-account": {
      const password = need(args[1], "password");
      const login = await gate.login(need(args[0], "user or email"), password);
      await gate.deleteAccount(login, password);
      console.log(`deleted the account of uid ${login.uid}: its sessions ended, its name and email are free again`);
      return;
    }
    case "download": {
      const login = await gate.login(need(args[0], "user or email"), need(args[1], "password"));
      const file = await gate.download(login, need(args[2], "file id"));
      const path = args[3] ?? basename(file.name);
      await writeFile(path, file.bytes);
      console.log(`saved ${file.bytes.length} bytes (${file.contentType}) to ${path}`);
      return;
    }
    case "send":
    case "chat": {
      const login = await gate.login(need(args[0], "user or email"), need(args[1], "password"));
      const chat = await openChat(login, transport, { device });
      console.log(`logged in as uid ${login.uid} on ${login.nodeId} (${transport})`);
      chat.on("syncIncomplete", (err) =>
        console.log(`(some messages could not be fetched now: ${err.message}; run again later)`),
      );
      // Pushes that arrive while the sync runs wait for it, so that everything prints in order, once.
      const print = printer(chat);
      let early: ChatMessage[] | undefined = [];
      chat.on("message", (m) => (early ? early.push(m) : void print(m)));
      const synced = await chat.syncAll();
      const key = (m: ChatMessage) => `${m.convId} ${m.seq}`;
      const inSync = new Set(synced.map(key));
      for (const m of [...synced, ...early.filter((m) => !inSync.has(key(m)))]) void print(m);
      early = undefined;
      if (command === "send") {
        // Closed whatever the answer: a refused send (BLOCKED, …) exits too.
        try {
          const ack = await chat.sendText(need(args[2], "uid"), need(args.slice(3).join(" ") || undefined, "text"));
          console.log(`stored as ${ack.msgId} (#${ack.seq} in ${ack.convId})`);
        } finally {
          await chat.close();
        }
        return;
      }
      chat.on("kicked", (k) => console.log(`kicked: ${errorName(k.reason)} ${k.message}`));
      printSocialPushes(chat);
      printGroupPushes(chat);
      printMessagePushes(chat);
      printSafetyPushes(chat);
      const pending = await chat.friendApplications();
      if (pending.length > 0) console.log(`${pending.length} friend application(s) waiting: type /applications`);
      chat.on("close", (reason) => {
        console.log(`connection closed: ${reason}`);
        process.exit(0);
      });
      const lines = createInterface({ input: process.stdin });
      for await (const line of lines) {
        if (await runGroupSlashCommand(chat, line)) continue;
        if (await runMessageSlashCommand(chat, line)) continue;
        if (await runSafetySlashCommand(chat, line)) continue;
        if (await runSlashCommand(chat, line)) continue;
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
    default: {
      const social = command
        ? (socialCommands[command] ?? groupCommands[command] ?? messageCommands[command] ?? safetyCommands[command])
        : undefined;
      if (social) {
        const login = await gate.login(need(args[0], "user or email"), need(args[1], "password"));
        const chat = await openChat(login, transport, { device });
        try {
          await social.run(chat, args.slice(2));
        } finally {
          await chat.close();
        }
        return;
      }
      console.log(usage);
      if (!values.help && command) process.exitCode = 2;
    }
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
