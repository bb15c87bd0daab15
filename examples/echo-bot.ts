/**
 * A small bot: it stays logged in through @shardchat/sdk and answers every text message sent to
 * it 1:1 with "echo: <the text>".
 *
 *   SHARDCHAT_GATE=http://127.0.0.1:8080 SHARDCHAT_USER=echo SHARDCHAT_PASSWORD=... \
 *     node --conditions=shardchat-source --import tsx examples/echo-bot.ts
 *
 * It is an ordinary user account holding a chat session (ResilientChat: reconnects and follows
 * its node when the cluster changes). It answers what arrives while it listens: what was stored
 * for it before is synced and acked inside ResilientChat.open, before the handler is attached.
 * A bot of the Server API (README "Bots") holds no session: it gets its messages by webhook
 * and answers over HTTP.
 */
import { type ChatMessage, GateClient, MessageKind, ResilientChat } from "@shardchat/sdk";

const user = process.env.SHARDCHAT_USER;
const password = process.env.SHARDCHAT_PASSWORD;
if (!user || !password) {
  console.error("usage: SHARDCHAT_USER=... SHARDCHAT_PASSWORD=... echo-bot.ts");
  process.exit(2);
}
const gate = new GateClient(process.env.SHARDCHAT_GATE ?? "http://127.0.0.1:8080");
const login = await gate.login(user, password);
// A node that died named no successor: the chat logs in through gate again (a fresh token).
const chat = await ResilientChat.open(login, { relogin: () => gate.login(user, password) });

chat.on("message", (message: ChatMessage) => {
  // 1:1 text from someone else only: its own answers come back as pushes too.
  if (message.kind !== MessageKind.TEXT || message.sender === login.uid || !message.convId.startsWith("p:")) return;
  chat.sendText(message.sender, `echo: ${message.text}`).catch((err: Error) => {
    console.error(`could not answer ${message.sender}: ${err.message}`);
  });
});

console.log(`echo bot ${login.uid} is listening`);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    chat.close().finally(() => process.exit(0));
  });
}
