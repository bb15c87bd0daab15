export { ChatClient, type ChatClientOptions } from "./chat-client.js";
export { GateClient, type LoginAnswer } from "./gate-client.js";
export { openChat, type Transport } from "./open-chat.js";
export { type Endpoint, openWire, type Wire } from "./wire.js";
