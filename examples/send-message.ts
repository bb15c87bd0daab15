/**
 * Sends one text message through @shardchat/sdk and prints what the chat node answered.
 *
 *   SHARDCHAT_GATE=http://127.0.0.1:8080 SHARDCHAT_USER=alice SHARDCHAT_PASSWORD=... \
 *     node --conditions=shardchat-source --import tsx examples/send-message.ts <to uid> <text...>
 *
 * SHARDCHAT_TRANSPORT is tcp (the default) or ws.
 */
import { GateClient, openChat, type Transport } from "@shardchat/sdk";

const [to, ...words] = process.argv.slice(2);
const user = process.env.SHARDCHAT_USER;
const password = process.env.SHARDCHAT_PASSWORD;
if (!to || words.length === 0 || !user || !password) {
  console.error("usage: SHARDCHAT_USER=... SHARDCHAT_PASSWORD=... send-message.ts <to uid> <text...>");
  process.exit(2);
}
const gate = new GateClient(process.env.SHARDCHAT_GATE ?? "http://127.0.0.1:8080");
const transport = (process.env.SHARDCHAT_TRANSPORT ?? "tcp") as Transport;

// Gate checks the password and names the chat node that holds this user; openChat connects
// there and logs in with the token (following a redirect if the user has moved).
const chat = await openChat(await gate.login(user, password), transport);
try {
  const sent = await chat.sendText(to, words.join(" "));
  console.log(`sent ${sent.msgId}: seq ${sent.seq} of ${sent.convId}`);
} finally {
  await chat.close();
}
