import type { DecimalId, Uid } from "../ids/identifiers.js";

export type { Uid };

/**
 * A message kind as stored (messages.kind): the wire's MessageKind numbers, which the chat
 * handlers check at the edge; the stores keep whatever number they were given.
 */
export type MessageKindValue = number;

/** A file a message names, as gate stored it (size as a decimal string: a BIGINT). */
export interface StoredFile {
  id: string;
  name: string;
  size: string;
  contentType: string;
}

/** A MESSAGE_KIND_CUSTOM message's content: the app's type name and its JSON text. */
export interface StoredCustom {
  type: string;
  payloadJson: string;
}

/** The message a reply quotes, as stored with the reply; the snippet is filled on every read. */
export interface StoredReply {
  seq: number;
  msgId: string;
  sender: Uid;
  kind: MessageKindValue;
  /** Filled from the quoted message as it is now (empty once recalled). */
  snippet: string;
  recalled: boolean;
}

export interface StoredMentions {
  uids: Uid[];
  all: boolean;
}

export interface StoredForwardOrigin {
  convId: string;
  msgId: string;
  sender: Uid;
  sentAtMs: string;
}

export interface StoredReactionCount {
  emoji: string;
  count: number;
  /** Whether the reader reacted with it (false in an event pushed to everyone). */
  me: boolean;
}

/** What a message carries beyond text and file (issue 16), all optional: stored as one JSON column. */
export interface MessageExtras {
  custom?: StoredCustom | undefined;
  reply?: StoredReply | undefined;
  mentions?: StoredMentions | undefined;
  forwarded?: StoredForwardOrigin | undefined;
  /** An event's target (MESSAGE_KIND_*_EVENT). */
  targetSeq?: number | undefined;
  /** A reaction event's change. */
  reaction?: { emoji: string; add: boolean } | undefined;
}

/**
 * A message as the stores answer it. Storage's own type, not the wire's; the two have the same
 * fields, so the chat node pushes a stored message as the wire's StoredMessage without a copy.
 */
export interface StoredMessage extends MessageExtras {
  convId: string;
  msgId: string;
  /** Position in the conversation: 1, 2, 3... without gaps. */
  seq: number;
  sender: Uid;
  /** The peer of a 1:1 message; "0" in a group. */
  recipient: Uid;
  clientMsgId: string;
  kind: MessageKindValue;
  text: string;
  sentAtMs: string;
  file?: StoredFile | undefined;
  /** State later events changed: edits, recall, reactions (absent while untouched). */
  editCount?: number | undefined;
  editedAtMs?: string | undefined;
  recalled?: boolean | undefined;
  reactions?: { counts: StoredReactionCount[] } | undefined;
  /** Deleted for the reader (delete for me): its content is left out. */
  deletedForMe?: boolean | undefined;
  /** An event's target as it is now. */
  target?: StoredMessage | undefined;
}

/** The message kinds storage treats specially (the wire's MessageKind numbers). */
export const STORED_KIND = { text: 1, custom: 2, file: 30, recallEvent: 50, editEvent: 51, reactionEvent: 52 } as const;

/** Whether a kind is an event (a change to another message), not content. */
export function isEventKind(kind: MessageKindValue): boolean {
  return kind >= 50 && kind <= 59;
}

/** What a change does to its target; decided by the chat node's rules under the conversation's lock. */
export type MessageEffect =
  | { kind: "recall" }
  | { kind: "edit"; text: string; atMs: number }
  | { kind: "react"; emoji: string; add: boolean; maxDistinct: number };

/**
 * A change to a stored message (recall, edit, reaction), stored as an event with the
 * conversation's next seq in the same transaction that changes the target.
 */
export interface MessageChange {
  convId: string;
  targetSeq: number;
  /** The event row: its id, who acts (a member of the conversation), when. */
  msgId: string;
  actor: Uid;
  sentAtMs: number;
  /**
   * The rules, given the target as it is under the lock: throws AppError to refuse, answers the
   * effect, or null when the change has nothing to do (a second recall).
   */
  decide(target: StoredMessage): MessageEffect | null;
}

export interface ChangeOutcome {
  /** The stored event, its target as it is after the change; absent when nothing changed. */
  event?: StoredMessage;
  /** The target as it is now. */
  target: StoredMessage;
}

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
  /** Up to limit users whose name starts with prefix (case-insensitive), by name. */
  searchByNamePrefix(prefix: string, limit: number): Promise<UserRecord[]>;
}

export interface NewMessage {
  convId: string;
  /** Everyone in the conversation, sender included (created as members on first use). */
  members: Uid[];
  /** From the snowflake generator. */
  msgId: DecimalId;
  sender: Uid;
  recipient: Uid;
  clientMsgId: string;
  kind: MessageKindValue;
  text: string;
  sentAtMs: number;
  /** The file a MESSAGE_KIND_FILE message names (stored with the message, so history needs no files lookup). */
  file?: StoredFile;
  /** Custom content, a reply, forward origin (mentions are for group messages). */
  extras?: MessageExtras;
}

export interface HistoryQuery {
  /** > 0: ascending from afterSeq + 1. */
  afterSeq: number;
  /** Otherwise descending from beforeSeq - 1; 0 means from the newest. */
  beforeSeq: number;
  limit: number;
}

/** One conversation's run of history for BulkImporter.importHistory: its messages in seq order. */
export interface ImportedConversation {
  convId: string;
  /** 1: a 1:1 conversation (created with its members when new); 2: a group's (it must exist). */
  kind: 1 | 2;
  /** Everyone whose delivered and read cursors move to the end of the run (senders included). */
  members: Uid[];
  messages: Omit<NewMessage, "convId" | "members" | "file">[];
}

/** Users and history written in bulk, for loading data (npm run seed-data), not for live traffic. */
export interface BulkImporter {
  /**
   * New users, in multi-row statements (with their name and email index rows where the storage
   * keeps them). Their names and emails must be free: a taken one fails the batch.
   */
  importUsers(users: UserRecord[]): Promise<void>;
  /**
   * Each conversation's messages take the seqs after its last one, gapless, a whole batch in
   * one transaction per instance with multi-row statements. Members' cursors move to the end
   * (the history counts as delivered and read), so nobody logs in to a sync of all of it.
   */
  importHistory(batch: ImportedConversation[]): Promise<void>;
}

/** Conversations and their messages. */
export interface MessageStore {
  /**
   * Stores a message with the next seq of its conversation, durably, and advances the
   * sender's own cursor. The same (convId, sender, clientMsgId) again answers the stored
   * message with duplicate = true. Throws AppError(STORAGE_UNAVAILABLE) when the database
   * does not answer. Appends of one conversation take their seqs in the order they were called,
   * without waiting for each other's commit: a caller that orders its calls (a sender's lane on
   * a chat node) orders the seqs.
   */
  append(message: NewMessage): Promise<{ message: StoredMessage; duplicate: boolean }>;
  /** Messages after the user's delivered cursor, per conversation in seq order. */
  pending(uid: Uid, limit: number): Promise<{ messages: StoredMessage[]; more: boolean }>;
  /** Advances the user's delivered cursors (never backwards). */
  ack(uid: Uid, cursors: { convId: string; seq: number }[]): Promise<void>;
  /** A page of a conversation; AppError(NOT_PARTICIPANT) if uid is not a member. */
  history(uid: Uid, convId: string, query: HistoryQuery): Promise<StoredMessage[]>;
  /** Whether uid is a member row of convId (a 1:1 conversation has its rows from its first message). */
  isMember(convId: string, uid: Uid): Promise<boolean>;
  /**
   * One message as history answers it to uid, or null when there is no such seq;
   * AppError(NOT_PARTICIPANT) if uid is not a member.
   */
  message(uid: Uid, convId: string, seq: number): Promise<StoredMessage | null>;
  /**
   * Applies a change to the message at targetSeq and stores its event with the next seq, in one
   * transaction holding the conversation's lock. AppError(NOT_PARTICIPANT) if the actor is not a
   * member, AppError(NOT_FOUND) without such a message (or when it is an event); decide's own
   * errors; AppError(REACTION_LIMIT) when a reaction would exceed maxDistinct.
   */
  change(change: MessageChange): Promise<ChangeOutcome>;
  /**
   * Deletes messages for uid alone (delete for me): history and sync answer them to uid with
   * deletedForMe and no content. Seqs past the last message are ignored; AppError(NOT_PARTICIPANT).
   */
  hide(uid: Uid, convId: string, seqs: number[]): Promise<void>;
}

/** What storage keeps about an uploaded file; its bytes are in a FileStore (src/files). */
export interface FileMeta {
  /** Snowflake, decimal. */
  id: string;
  owner: Uid;
  /** The conversation it was uploaded for: its participants may download it. */
  convId: string;
  /** Conversations it was forwarded into (FileMetaStore.share): their participants may download it too. */
  sharedWith?: string[];
  name: string;
  size: number;
  contentType: string;
  createdAt: number;
}

/** Uploaded files' metadata. */
export interface FileMetaStore {
  /** Throws AppError(STORAGE_UNAVAILABLE) when the database does not answer. */
  create(meta: FileMeta): Promise<void>;
  byId(id: string): Promise<FileMeta | null>;
  /**
   * A message names the file (the first time: later calls change nothing). False when there is
   * no such file any more (swept): the message must not be stored then.
   */
  markSent(id: string, atMs: number): Promise<boolean>;
  /**
   * A forwarded message names the file in another conversation: its participants may download
   * it too (idempotent). False when there is no such file.
   */
  share(id: string, convId: string): Promise<boolean>;
  /**
   * Removes up to `limit` files created before `beforeMs` that no message names, and answers
   * their ids (their bytes are the caller's to delete). A file marked sent meanwhile stays.
   */
  sweepUnsent(beforeMs: number, limit: number): Promise<string[]>;
}

export interface FriendApplicationRecord {
  fromUid: Uid;
  toUid: Uid;
  message: string;
  createdAtMs: number;
}

export interface FriendRecord {
  uid: Uid;
  sinceMs: number;
}

/**
 * Friendships and friend applications. A friendship is two rows, one per side, each on its
 * owner's shard (by uid); an application lives on the recipient's shard (by toUid), so the
 * pending list of a user is one read of one shard.
 */
export interface FriendStore {
  /** Records an application from → to (again: replaces its message and time). */
  apply(application: FriendApplicationRecord): Promise<void>;
  /** Applications waiting for uid's answer, newest first. */
  incoming(uid: Uid, limit: number): Promise<FriendApplicationRecord[]>;
  /** The pending application from → to, or null. */
  application(fromUid: Uid, toUid: Uid): Promise<FriendApplicationRecord | null>;
  /** Removes the application from → to (answered or withdrawn); answers whether there was one. */
  dropApplication(fromUid: Uid, toUid: Uid): Promise<boolean>;
  /** Makes a and b friends: both rows, idempotent (a retry after a half-done call completes it). */
  befriend(a: Uid, b: Uid, sinceMs: number): Promise<void>;
  /** Removes both rows; answers whether a had b as a friend. */
  unfriend(a: Uid, b: Uid): Promise<boolean>;
  /** Whether a lists b as a friend (one read on a's shard). */
  areFriends(a: Uid, b: Uid): Promise<boolean>;
  /** uid's friends, oldest friendship first. */
  friends(uid: Uid, limit: number): Promise<FriendRecord[]>;
  /** How many friends uid has. */
  friendCount(uid: Uid): Promise<number>;
}

export interface ConversationSummaryRecord {
  convId: string;
  lastSeq: number;
  /** uid's read cursor. */
  readSeq: number;
  /** The other member's read cursor in a 1:1 conversation ("p:..."); 0 for other kinds. */
  peerReadSeq: number;
  /** The message at lastSeq (undefined only when it is missing, e.g. a conversation with no message yet). */
  lastMessage?: StoredMessage;
  /** A message after readSeq mentions uid or everyone. */
  mentioned: boolean;
}

/**
 * Per-user views of conversations: the conversation list and read cursors. Read cursors are
 * member rows (conversation_members.read_seq), beside their conversation on its shard.
 */
export interface ConversationStore {
  /** uid's conversations, the most recently active first (by the last message's id). */
  list(uid: Uid, limit: number): Promise<ConversationSummaryRecord[]>;
  /**
   * Moves uid's read cursor of convId to seq (never backwards, never past the last message);
   * answers the cursor after the call and whether it moved. AppError(NOT_PARTICIPANT) if uid
   * is not a member.
   */
  markRead(uid: Uid, convId: string, seq: number): Promise<{ readSeq: number; advanced: boolean }>;
}

/** Roles in a group (the values of proto GroupRole). */
export const GROUP_ROLE = { member: 1, admin: 2, owner: 3 } as const;
export type GroupRoleValue = (typeof GROUP_ROLE)[keyof typeof GROUP_ROLE];

export interface GroupRecord {
  groupId: string;
  /** "g:<groupId>": the group's conversation (messages, seqs, members' cursors). */
  convId: string;
  name: string;
  owner: Uid;
  memberCount: number;
  createdAt: number;
}

export interface NewGroup {
  groupId: string;
  name: string;
  owner: Uid;
  members: Uid[];
  maxMembers: number;
}

/** An open invitation of uid into a group, by an admin or the owner. */
export interface GroupInvitationRecord {
  group: GroupRecord;
  uid: Uid;
  inviter: Uid;
  createdAt: number;
}

export interface GroupMemberRecord {
  uid: Uid;
  role: GroupRoleValue;
  joinedAt: number;
}

export interface NewGroupMessage {
  groupId: string;
  msgId: string;
  sender: Uid;
  clientMsgId: string;
  kind: MessageKindValue;
  text: string;
  sentAtMs: number;
  /** The file a MESSAGE_KIND_FILE message names, as for a 1:1 message. */
  file?: StoredFile;
  /** Custom content, a reply, forward origin, mentions (members' mention marks move with it). */
  extras?: MessageExtras;
}

/**
 * Groups, their members with roles, and group messages. A group's rows live beside its
 * conversation ("g:<groupId>"), so a membership change and the member's conversation cursor
 * change in one local transaction; a member joins with its cursor at the conversation's
 * last_seq, so a group message never writes per-member rows (members' cursors move on ack).
 * Role checks are the caller's; these methods only keep the data consistent.
 */
export interface GroupStore {
  /** The owner and members (each once) join; AppError(GROUP_TOO_LARGE) over maxMembers. */
  create(group: NewGroup): Promise<GroupRecord>;
  get(groupId: string): Promise<GroupRecord | null>;
  /** The member's role, or null when uid is not in the group. */
  roleOf(groupId: string, uid: Uid): Promise<GroupRoleValue | null>;
  /** A page of members in uid order, after afterUid ("0" = from the start). */
  members(groupId: string, afterUid: Uid, limit: number): Promise<GroupMemberRecord[]>;
  /** Every member's uid, in one query (the fan-out of a group message). */
  memberUids(groupId: string): Promise<Uid[]>;
  /**
   * Adds members (role member) and answers those who were not in before;
   * AppError(GROUP_NOT_FOUND), AppError(GROUP_TOO_LARGE) when the group would exceed maxMembers.
   */
  addMembers(groupId: string, uids: Uid[], maxMembers: number): Promise<Uid[]>;
  /** Removes a member (its cursor too); false when it was not one. */
  removeMember(groupId: string, uid: Uid): Promise<boolean>;
  setRole(groupId: string, uid: Uid, role: GroupRoleValue): Promise<boolean>;
  /**
   * Hands the group from its owner `from` to the member `to` in one transaction: `to` becomes
   * the owner, `from` an admin. False (nothing changed) when `from` is not the owner or `to`
   * is not a member.
   */
  transferOwnership(groupId: string, from: Uid, to: Uid): Promise<boolean>;
  rename(groupId: string, name: string): Promise<GroupRecord | null>;
  /** A page of the groups uid is in, by group id, after afterGroupId ("0" = from the start). */
  groupsOf(uid: Uid, afterGroupId: string, limit: number): Promise<GroupRecord[]>;
  /**
   * Invites the uids that are not members (inviting again renews the invitation's time and
   * inviter) and answers them; AppError(GROUP_NOT_FOUND).
   */
  invite(groupId: string, inviter: Uid, uids: Uid[], nowMs: number): Promise<Uid[]>;
  /**
   * uid's invitations created at or after sinceMs (older ones have expired and are dropped)
   * and before beforeMs (0: no bound), newest first.
   */
  invitationsOf(uid: Uid, sinceMs: number, beforeMs: number, limit: number): Promise<GroupInvitationRecord[]>;
  /**
   * Answers uid's invitation into groupId, if one created at or after sinceMs is open: accept
   * joins the group as addMembers does (AppError(GROUP_TOO_LARGE) keeps the invitation), and
   * either way the invitation is gone. The group (after the join), or null without an open
   * invitation.
   */
  answerInvitation(
    groupId: string,
    uid: Uid,
    answer: { accept: boolean; sinceMs: number; maxMembers: number },
  ): Promise<GroupRecord | null>;
  /**
   * Stores a group message once, with the next seq of the group's conversation, and moves the
   * sender's cursor; AppError(NOT_GROUP_MEMBER) when the sender is not a member. The same
   * (sender, clientMsgId) again answers the stored message with duplicate = true.
   */
  append(m: NewGroupMessage): Promise<{ message: StoredMessage; duplicate: boolean }>;
}
