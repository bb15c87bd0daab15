import type { ChatMessage, MessageKind } from "../gen/shardchat/v1/client.js";

/** Ids (uids, message ids) are decimal strings: snowflakes do not fit a JS number. */
export type Uid = string;

export interface UserRecord {
  uid: Uid;
  name: string;
  email: string;
  passwordHash: string;
  createdAt: number;
}

/** Accounts. Emails are stored lower-cased; names and emails compare case-insensitively. */
export interface UserStore {
  /** Throws AppError(USER_EXISTS) or AppError(EMAIL_EXISTS) when taken. */
  create(user: UserRecord): Promise<void>;
  byUid(uid: Uid): Promise<UserRecord | null>;
  byName(name: string): Promise<UserRecord | null>;
  byEmail(email: string): Promise<UserRecord | null>;
  setPassword(uid: Uid, passwordHash: string): Promise<void>;
  /** Which of these uids exist. */
  existing(uids: Uid[]): Promise<Set<Uid>>;
}

export interface NewMessage {
  convId: string;
  /** Everyone in the conversation, sender included (created as members on first use). */
  members: Uid[];
  msgId: string;
  sender: Uid;
  recipient: Uid;
  clientMsgId: string;
  kind: MessageKind;
  text: string;
  sentAtMs: number;
}

export interface HistoryQuery {
  /** > 0: ascending from afterSeq + 1. */
  afterSeq: number;
  /** Otherwise descending from beforeSeq - 1; 0 means from the newest. */
  beforeSeq: number;
  limit: number;
}

/** Conversations and their messages. */
export interface MessageStore {
  /**
   * Stores a message with the next seq of its conversation, durably, and advances the
   * sender's own cursor. The same (convId, sender, clientMsgId) again answers the stored
   * message with duplicate = true. Throws AppError(STORAGE_UNAVAILABLE) when the database
   * does not answer.
   */
  append(message: NewMessage): Promise<{ message: ChatMessage; duplicate: boolean }>;
  /** Messages after the user's delivered cursor, per conversation in seq order. */
  pending(uid: Uid, limit: number): Promise<{ messages: ChatMessage[]; more: boolean }>;
  /** Advances the user's delivered cursors (never backwards). */
  ack(uid: Uid, cursors: { convId: string; seq: number }[]): Promise<void>;
  /** A page of a conversation; AppError(NOT_PARTICIPANT) if uid is not a member. */
  history(uid: Uid, convId: string, query: HistoryQuery): Promise<ChatMessage[]>;
}
