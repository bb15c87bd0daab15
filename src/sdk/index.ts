// The wire types of friends, conversations and devices, for typed use of the ChatClient's methods and events.
export {
  type ChatMessage,
  type ConversationSummary,
  type DeletedForMePush,
  DeviceKind,
  type Friend,
  type FriendApplication,
  MessageKind,
  type PresencePush,
  type ReadReceiptPush,
  type TypingPush,
  type UserInfo,
} from "../gen/shardchat/v1/client.js";
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
export { ChatClient, type ChatClientOptions, type OutgoingContent } from "./chat-client.js";
export { type Auth, GateClient, type LoginAnswer, type UploadedFile } from "./gate-client.js";
export { applyMessageEvent, isMessageEvent } from "./message-events.js";
export { openChat, type Transport } from "./open-chat.js";
export { ResilientChat, type ResilientChatOptions } from "./resilient-chat.js";
export { type Endpoint, openWire, type Wire } from "./wire.js";
