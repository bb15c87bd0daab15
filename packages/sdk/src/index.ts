// @shardchat/sdk: the typed client of shardchat. GateClient speaks to gate over HTTP (accounts,
// login, files); ChatClient, openChat and ResilientChat speak the chat protocol to a chat node,
// over TCP or WebSocket in Node and over the browser's WebSocket in a browser bundle (#wire).

// The protocol's message types and the one error-code table, for typed use of the clients'
// methods, answers and events.
export {
  AppError,
  codeOf,
  DEVICE_NAMES,
  type DecimalId,
  DetailedError,
  type DeviceName,
  ErrorCode,
  errorName,
  type Uid,
} from "@shardchat/protocol";
export * from "@shardchat/protocol/wire";
export { openWire } from "#wire";
export {
  type AdminBot,
  AdminClient,
  type AdminConversation,
  type AdminGroup,
  type AdminMessage,
  type AdminNewUser,
  type AdminReport,
  type AdminSend,
  type AdminSent,
  type AdminStats,
  type AdminUser,
} from "./admin-client.js";
export {
  ChatClient,
  type ChatClientEvents,
  type ChatClientOptions,
  type CreatedGroup,
  type OutgoingContent,
} from "./chat-client.js";
export { type Endpoint, SDK_MAX_FRAME_BYTES, type Wire } from "./endpoint.js";
export {
  type Auth,
  GateClient,
  type LoginAnswer,
  type ResumableSource,
  type ResumableUploadOptions,
  type UploadedFile,
  type UploadedMedia,
  type UploadOptions,
} from "./gate-client.js";
export { applyMessageEvent, isMessageEvent } from "./message-events.js";
export { openChat, type Transport } from "./open-chat.js";
export {
  backoffMs,
  ResilientChat,
  type ResilientChatEvents,
  type ResilientChatOptions,
} from "./resilient-chat.js";
