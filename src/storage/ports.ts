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
  /** What gate learned of the content on upload (issue 19): dimensions, a thumbnail, a duration. */
  media?: FileMedia;
}

/**
 * An image's dimensions and thumbnail, or a recording's length (proto FileMedia), as gate read
 * them on upload. The thumbnail's bytes are in the FileStore under thumbnailKey(file id).
 */
export interface FileMedia {
  width: number;
  height: number;
  durationMs: number;
  thumbnail?: { width: number; height: number; size: string; contentType: string };
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
  /**
   * Gives the user another name (the Server API's display name change, issue 18); false when
   * there is no such user, AppError(USER_EXISTS) when the name is taken.
   */
  rename(uid: Uid, name: string): Promise<boolean>;
  /** Which of these uids exist. */
  existing(uids: Uid[]): Promise<Set<Uid>>;
  /** Up to limit users whose name starts with prefix (case-insensitive), by name. */
  searchByNamePrefix(prefix: string, limit: number): Promise<UserRecord[]>;
  /**
   * Deletes the account's row (sharded: and its name and email index rows), so the name and
   * email can register again; the uid is never reused (ids are snowflakes). Idempotent: answers
   * whether there was a user.
   */
  delete(uid: Uid): Promise<boolean>;
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
   * message with duplicate = true (even once the pair is blocked). Throws AppError(BLOCKED)
   * when one of a 1:1 pair blocked the other (BlockStore's mark, read in the append's own
   * transaction: no seq is used), and AppError(STORAGE_UNAVAILABLE) when the database does not
   * answer. Appends of one conversation take their seqs in the order they were called, without
   * waiting for each other's commit: a caller that orders its calls (a sender's lane on a chat
   * node) orders the seqs.
   */
  append(message: NewMessage): Promise<{ message: StoredMessage; duplicate: boolean }>;
  /**
   * Messages after the user's delivered cursor, per conversation in seq order; a cursor below
   * the conversation's retained_from_seq reads from there (the purged seqs are not waiting).
   */
  pending(uid: Uid, limit: number): Promise<{ messages: StoredMessage[]; more: boolean }>;
  /** Advances the user's delivered cursors (never backwards). */
  ack(uid: Uid, cursors: { convId: string; seq: number }[]): Promise<void>;
  /**
   * A page of a conversation; AppError(NOT_PARTICIPANT) if uid is not a member. Messages at or
   * below uid's cleared seq (clear history for me) are left out.
   */
  history(uid: Uid, convId: string, query: HistoryQuery): Promise<StoredMessage[]>;
  /**
   * history() with the first seq uid may read there: 1 unless it cleared the history up to
   * firstSeq - 1, or the retention purge deleted the messages before retained_from_seq (the larger).
   */
  historyPage(uid: Uid, convId: string, query: HistoryQuery): Promise<{ messages: StoredMessage[]; firstSeq: number }>;
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
   * errors; AppError(REACTION_LIMIT) when a reaction would exceed maxDistinct;
   * AppError(GROUP_DISSOLVED) in a dissolved group's conversation (its messages stay as they were);
   * AppError(BLOCKED) for an edit or a reaction in a blocked pair's 1:1 conversation (a recall
   * goes through).
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
  /** Dimensions, thumbnail or duration, when gate read them on upload (issue 19). */
  media?: FileMedia;
}

/** Uploaded files' metadata. */
export interface FileMetaStore {
  /** Throws AppError(STORAGE_UNAVAILABLE) when the database does not answer. */
  create(meta: FileMeta): Promise<void>;
  /** Null for an unknown id, and for a released file (see release): it is as good as deleted. */
  byId(id: string): Promise<FileMeta | null>;
  /**
   * A message names the file: the first time marks it sent (the sweep of unsent uploads keeps
   * it), and every call counts one more message naming it (see release). False when there is no
   * such file any more (swept or released): the message must not be stored then.
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
  /**
   * Bytes of all of owner's files still stored (sent or not, released but not yet swept) and of
   * its uploads started and not completed (their declared sizes): its quota's usage. Counting
   * the started ones keeps concurrent uploads, each within the quota, from passing it together.
   */
  usageOf(owner: Uid): Promise<number>;
  /**
   * An upload started (direct or resumable) whose declared `size` it reserves: its object may
   * appear under `id` before (or without) a files row.
   */
  startPending(id: string, owner: Uid, size: number, atMs: number): Promise<void>;
  /** The direct upload is over (its files row stored, or its object dropped); idempotent. */
  completePending(id: string): Promise<void>;
  /**
   * Removes up to `limit` pending uploads started before `beforeMs` and answers the ids of those
   * no files row names (their objects are the caller's to delete).
   */
  sweepPending(beforeMs: number, limit: number): Promise<string[]>;
  /**
   * A message naming the file is gone (recalled, or deleted by the retention purge): one less
   * names it. When it was the last one and the file was never forwarded (a forward's copy still
   * names it), the file is released: no message may name it again and the sweep of released
   * files deletes it. Answers whether it was released now; an unknown id answers false.
   */
  release(id: string, atMs: number): Promise<boolean>;
  /**
   * Removes up to `limit` released files (never one shared meanwhile) and answers their ids
   * (their bytes and thumbnails are the caller's to delete).
   */
  sweepReleased(limit: number): Promise<string[]>;
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
  /** uid's settings (issue 17). */
  settings: ConversationSettingsRecord;
  /** History starts after this seq for uid (cleared for it, or purged by retention); 0: from the start. */
  clearedSeq: number;
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
  /**
   * Changes uid's settings of convId (fields left out stay); hiding records the conversation's
   * last_seq, and list() leaves it out until a message comes after it. Pinned conversations
   * come first in list(). AppError(NOT_PARTICIPANT) if uid is not a member.
   */
  setSettings(
    uid: Uid,
    convId: string,
    patch: Partial<ConversationSettingsRecord>,
  ): Promise<ConversationSettingsRecord>;
  /**
   * Clears convId's history for uid up to seq (0: the newest; never past it, never backwards):
   * history, sync and the conversation list start after it for uid alone (and its delivery
   * cursor moves past it). Answers the cleared seq; AppError(NOT_PARTICIPANT).
   */
  clearHistory(uid: Uid, convId: string, seq: number): Promise<number>;
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
  /** Moderation (issue 17): only admins and the owner post. */
  mutedAll?: boolean;
  /** Shown at the top of the group (absent: none). */
  announcement?: { text: string; by: Uid; atMs: number } | undefined;
  /** New members join only when an admin approves their join request. */
  joinApproval?: boolean;
  /** Dissolved by its owner: nobody posts or joins; members' history stays readable when kept. */
  dissolved?: boolean;
  /** Retention (issue 17): its messages are purged this long after they were sent (absent or 0: the deployment's). */
  messageTtlSeconds?: number;
}

/** A user's request to join a group that requires approval. */
export interface GroupJoinRequestRecord {
  groupId: string;
  uid: Uid;
  message: string;
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
  /** Muted until then (ms since the epoch; 0: not muted). */
  mutedUntil?: number;
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
   * sender's cursor; AppError(NOT_GROUP_MEMBER) when the sender is not a member,
   * AppError(GROUP_DISSOLVED) for a dissolved group, AppError(GROUP_MUTED) when the sender is
   * muted (mutedUntil > sentAtMs) or the group is mutedAll and the sender is a plain member.
   * The same (sender, clientMsgId) again answers the stored message with duplicate = true.
   */
  append(m: NewGroupMessage): Promise<{ message: StoredMessage; duplicate: boolean }>;

  // ---- Moderation (issue 17). Role checks are the caller's, as above.

  /** Mutes a member until untilMs (0: unmutes); false when uid is not a member. */
  mute(groupId: string, uid: Uid, untilMs: number): Promise<boolean>;
  /** Only admins and the owner post while muted. */
  setMutedAll(groupId: string, muted: boolean): Promise<GroupRecord | null>;
  /** Sets (or with text "" removes) the announcement. */
  announce(groupId: string, text: string, by: Uid, atMs: number): Promise<GroupRecord | null>;
  /** Whether new members need an admin's approval (invitations still work). */
  setJoinApproval(groupId: string, required: boolean): Promise<GroupRecord | null>;
  /**
   * Dissolves the group in one transaction on its shard: marked dissolved, its member rows,
   * invitations and join requests gone. With removeHistory its messages, reactions, delete-for-me
   * marks and members' cursors go too; else members keep their cursors and read the history.
   * Answers the uids that were members; AppError(GROUP_NOT_FOUND).
   */
  dissolve(groupId: string, removeHistory: boolean): Promise<Uid[]>;
  /**
   * Records uid's request to join (again: renews its message and time); AppError(GROUP_NOT_FOUND),
   * AppError(GROUP_DISSOLVED), AppError(INVALID_ARGUMENT) when uid is a member already.
   */
  requestJoin(request: GroupJoinRequestRecord): Promise<void>;
  /** The group's open join requests created at or after sinceMs, newest first. */
  joinRequests(groupId: string, sinceMs: number, limit: number): Promise<GroupJoinRequestRecord[]>;
  /**
   * Answers uid's open join request (created at or after sinceMs): accept adds the member as
   * addMembers does (AppError(GROUP_TOO_LARGE) keeps the request); either way it is gone. False
   * without an open request.
   */
  answerJoin(
    groupId: string,
    uid: Uid,
    answer: { accept: boolean; sinceMs: number; maxMembers: number },
  ): Promise<boolean>;
  /** The owner's and the admins' uids, in one query (who is told of a join request). */
  managers(groupId: string): Promise<Uid[]>;

  /**
   * Retention (issue 17): the group's message TTL in seconds (0: the deployment's
   * MESSAGE_TTL_SECONDS). Null when there is no such group; AppError(GROUP_DISSOLVED).
   */
  setRetention(groupId: string, ttlSeconds: number): Promise<GroupRecord | null>;
}

/** A block, as the blocker lists it. */
export interface BlockRecord {
  uid: Uid;
  sinceMs: number;
}

/**
 * Blocks between users (issue 17). A block is a row on the blocker's shard (by uid: its list is
 * one read) and a mark on the pair's 1:1 conversation row ("p:<low>:<high>", created empty
 * when the pair never talked), which is what every 1:1 append reads in its own transaction:
 * a blocked pair's message is refused with AppError(BLOCKED) at no extra round trip, and
 * `blockedAmong` answers from the same marks.
 */
export interface BlockStore {
  /** uid blocks other (idempotent); answers whether the block is new. */
  block(uid: Uid, other: Uid, atMs: number): Promise<boolean>;
  /** Ends uid's block of other (the other's block of uid, if any, stays); whether there was one. */
  unblock(uid: Uid, other: Uid): Promise<boolean>;
  /** Which of `others` uid blocked or is blocked by (one read per shard holding their pairs). */
  blockedAmong(uid: Uid, others: Uid[]): Promise<Set<Uid>>;
  /** The users uid blocked, the most recent first. */
  blocked(uid: Uid, limit: number): Promise<BlockRecord[]>;
  /** How many users uid blocked. */
  blockCount(uid: Uid): Promise<number>;
}

/** A user's report of another user or of a message, for the operators (issue 17). */
export interface ReportRecord {
  reportId: string;
  reporter: Uid;
  /** The reported user (a message's sender when a message is reported). */
  uid: Uid;
  /** The reported message, if any: its conversation, seq and a copy of its text and file name as it was. */
  convId: string;
  seq: number;
  snapshot: string;
  reason: string;
  createdAt: number;
}

/** Reports, kept for operators; placed by report id. */
export interface ReportStore {
  create(report: ReportRecord): Promise<void>;
  /** The newest reports first, before beforeMs (0: no bound), from every shard. */
  recent(beforeMs: number, limit: number): Promise<ReportRecord[]>;
}

/** One user's settings of one conversation (issue 17), the same on all of its devices. */
export interface ConversationSettingsRecord {
  pinned: boolean;
  /** Do not disturb (no push notification). */
  muted: boolean;
  /** Left out of the list now: hidden, and no message since (the next one lists it again). */
  hidden: boolean;
}

/** The push services a device is registered with (the same names as src/push/ports.ts PushProviderKind). */
export type PushProviderName = "webpush" | "fcm" | "apns";

/** The device kinds a push device may be (routing's DeviceName: one session per kind). */
export type PushDeviceKind = "desktop" | "web" | "mobile";

/**
 * A push device's kind when its registration named none: a browser's subscription is the web
 * client's, an FCM or APNs token a phone app's.
 */
export function defaultPushDeviceKind(provider: PushProviderName): PushDeviceKind {
  return provider === "webpush" ? "web" : "mobile";
}

/** A stored kind, or the provider's default for a row registered before kinds existed (''). */
export function pushDeviceKindOf(stored: unknown, provider: PushProviderName): PushDeviceKind {
  return stored === "desktop" || stored === "web" || stored === "mobile" ? stored : defaultPushDeviceKind(provider);
}

/** A device registered for push notifications (issue 18), one per (uid, deviceId). */
export interface PushDeviceRecord {
  uid: Uid;
  /** The client's own id of the device (stable across its logins). */
  deviceId: string;
  provider: PushProviderName;
  /**
   * The device kind its app logs in as (issue 18): it is pushed while its user has no session
   * of that kind, even with sessions of other kinds (PUSH_OFFLINE_DEVICE_KINDS).
   */
  kind: PushDeviceKind;
  /** What the provider addresses it by: a Web Push subscription as JSON, an FCM or APNs token. */
  token: string;
  /** When it was registered last (ms since the epoch). */
  updatedAt: number;
}

/**
 * Push devices (issue 18), table push_devices on the user's shard (by uid): a user's list is
 * one read of one shard, and its rows move with the user's slot. The chat node that stores a
 * message reads its offline recipients' devices, and drops one its provider calls gone.
 */
export interface PushDeviceStore {
  /**
   * Registers the device, or replaces what (uid, deviceId) had (provider, token, time); then
   * keeps only uid's maxPerUser most recently registered devices (a browser or app reinstalled
   * leaves its old registration behind: the oldest make room). Answers how many were dropped.
   */
  register(device: PushDeviceRecord, maxPerUser: number): Promise<number>;
  /** Removes uid's device (a logout, a user turning push off); whether there was one. */
  unregister(uid: Uid, deviceId: string): Promise<boolean>;
  /** Removes every device of uid (its account is being deleted); answers how many. */
  unregisterAll(uid: Uid): Promise<number>;
  /** uid's devices, the most recently registered first. */
  list(uid: Uid): Promise<PushDeviceRecord[]>;
  /**
   * Removes the device only while it still holds this token (its provider said the token is
   * gone; a registration made meanwhile, with a new token, stays). Whether a row went.
   */
  drop(uid: Uid, deviceId: string, token: string): Promise<boolean>;
}

/** A conversation with expired messages: those sent before cutoffMs may be purged. */
export interface ExpiredConversation {
  convId: string;
  cutoffMs: number;
}

/**
 * Retention (issue 17): deleting messages older than their TTL (a group's
 * chat_groups.message_ttl_seconds, else the deployment's MESSAGE_TTL_SECONDS). A conversation's
 * messages go oldest first, a prefix at a time: conversations.retained_from_seq is the first seq
 * still stored, and seqs are never reused or renumbered.
 */
export interface RetentionStore {
  /** The ids of the database instances to purge, each on its own (one for a single database). */
  instances(): string[];
  /**
   * A page of the instance's conversations whose first retained message (the messages row at
   * retained_from_seq, one primary-key read per conversation) is older than its TTL at nowMs,
   * with each one's cutoff. `after` is the page cursor ("" = from the start) and `next` the one
   * to ask with for the following page (null: no more). With defaultTtlSeconds 0 only groups
   * with a TTL of their own are looked at (one index range: empty when no group has one).
   * A page reads at most `limit` conversations, so it may answer fewer (even none) with a next.
   */
  expiredConversations(
    instance: string,
    after: string,
    limit: number,
    nowMs: number,
    defaultTtlSeconds: number,
  ): Promise<{ conversations: ExpiredConversation[]; next: string | null }>;
  /**
   * Deletes the oldest messages of convId sent before cutoffMs, at most maxRows of them (the
   * first maxRows from retained_from_seq, up to the first one that is not expired), with their
   * reactions and delete-for-me marks, and moves retained_from_seq past them: one short
   * transaction under the conversation row's lock (behind the slot fence when sharded; a fenced
   * slot throws SlotFencedError). Answers how many messages went (0: nothing expired there) and
   * the files they named, read in the same transaction: the caller releases them
   * (FileMetaStore.release), which lives on other shards.
   */
  purge(convId: string, cutoffMs: number, maxRows: number): Promise<PurgedBatch>;
}

/** What one retention purge deleted: messages, and the ids of the files they named. */
export interface PurgedBatch {
  messages: number;
  files: string[];
}

/** Account deletion (issue 17): what it needs of the messages a user sent. */
export interface SentMessageEraser {
  /** The conversations uid is a member of (1:1 and groups), as the conversation list finds them. */
  conversationsOf(uid: Uid): Promise<string[]>;
  /**
   * Erases the next maxRows messages uid sent in convId, after the cursor `after` ("" = from
   * the start; the next page's is `next`, null after the last): each one's text, file reference
   * and extras emptied, its reactions gone and recalled = 1 (events and messages recalled
   * already are left as they are). One transaction behind the slot fence, reading the sender's
   * messages by the (conv_id, sender, client_msg_id) key; again on a page erases nothing more.
   */
  eraseSent(uid: Uid, convId: string, after: string, maxRows: number): Promise<{ erased: number; next: string | null }>;
}

/** An account deletion gate recorded and the chat nodes have not finished yet. */
export interface AccountDeletionRecord {
  uid: Uid;
  requestedAt: number;
  /** The requesting gate's ACCOUNT_DELETE_MESSAGES was erase. */
  eraseMessages: boolean;
}

/**
 * Account deletions as requests (issue 17), table account_deletions placed by uid: gate records
 * one (it may touch only its own tables), the chat nodes' deletion worker carries it out
 * (src/account/account-deletion-worker.ts) and then marks it done.
 */
export interface AccountDeletionStore {
  /**
   * Records a deletion of uid, requested at atMs. Idempotent: asked again (a retry after a
   * failure half-way), the row takes the later time and keeps erase once any request asked it.
   */
  request(uid: Uid, atMs: number, eraseMessages: boolean): Promise<void>;
  /** The ids of the database instances, each read on its own (one for a single database). */
  instances(): string[];
  /**
   * A page of the requests stored on the instance, by uid: at most limit rows read after
   * `after` ("0": from the start), and `next` to ask with for the following page (null: no
   * more). Sharded, a row the current map places elsewhere (copied away by a rebalance, not
   * yet cleaned up) is left out, so a page may answer fewer (even none) with a next: the new
   * owner's pass has it.
   */
  pending(
    instance: string,
    after: Uid,
    limit: number,
  ): Promise<{ deletions: AccountDeletionRecord[]; next: Uid | null }>;
  /**
   * Deletes the request once carried out, unless it was requested again since (requested_at
   * changed): that one is carried out again by the next pass. Answers whether a row went.
   */
  done(uid: Uid, requestedAt: number): Promise<boolean>;
}

/**
 * A Server API key (issue 18). The key itself ("sk_<id>_<secret>") is shown once when made and
 * never stored: only the SHA-256 digest of its secret, compared in constant time.
 */
export interface ApiKeyRecord {
  /** Random, base64url (API_KEY_ID_CHARS characters): the placement key and what the CLI lists. */
  id: string;
  name: string;
  /** SHA-256 of the secret, hex. */
  secretDigest: string;
  createdAt: number;
  /** When it was revoked; 0 while it is valid. */
  revokedAt: number;
}

/** Server API keys; global rows, each placed by "apikey:" + its id (a list reads every instance). */
export interface ApiKeyStore {
  /** AppError(INVALID_ARGUMENT) for an id or name that does not fit its column. */
  create(key: ApiKeyRecord): Promise<void>;
  byId(id: string): Promise<ApiKeyRecord | null>;
  /** Every key, revoked ones too, oldest first. */
  list(): Promise<ApiKeyRecord[]>;
  /** Marks the key revoked at atMs; false when there is no such key or it was revoked already. */
  revoke(id: string, atMs: number): Promise<boolean>;
}

/** A ban of a user (issue 18): login answers ACCOUNT_BANNED while it lasts. */
export interface BanRecord {
  uid: Uid;
  /** The ban ends then (ms since the epoch); 0: until unbanned. */
  untilMs: number;
  reason: string;
  createdAt: number;
}

/** Bans, one row per banned user, placed by uid beside the user's other rows. */
export interface BanStore {
  /** Bans uid (again: replaces the ban's end and reason). */
  ban(ban: BanRecord): Promise<void>;
  /** Lifts uid's ban; whether there was one. */
  unban(uid: Uid): Promise<boolean>;
  /** uid's ban, or null; a ban that ended is answered too (the caller compares untilMs). */
  byUid(uid: Uid): Promise<BanRecord | null>;
}

/** How many rows one database instance holds, for the Server API's stats. */
export interface ShardSize {
  instance: string;
  users: number;
  messages: number;
}

/** Sizes of the database instances (issue 18): one count per table and instance. */
export interface StorageStats {
  sizes(): Promise<ShardSize[]>;
}

/** Column widths of the Server API's tables (sql/080_server_api.sql), checked at the edge and by the stores. */
export const ADMIN_COLUMN_CHARS = { apiKeyId: 32, apiKeyName: 100, banReason: 500 } as const;

/**
 * A bot (issue 18): a user account the Server API drives, which receives the messages it
 * should see as signed bot.message calls to its webhook URL (README "Bots").
 */
export interface BotRecord {
  uid: Uid;
  webhookUrl: string;
  createdAt: number;
  updatedAt: number;
}

/** Bots, one row per bot user, placed by uid beside the user's other rows (sql/083_bots.sql). */
export interface BotStore {
  /** Records uid as a bot; AppError(INVALID_ARGUMENT) for a URL that does not fit its column, USER_EXISTS when it is one already. */
  create(bot: BotRecord): Promise<void>;
  byUid(uid: Uid): Promise<BotRecord | null>;
  /** Changes the webhook URL; false when uid is no bot. */
  setWebhook(uid: Uid, webhookUrl: string, atMs: number): Promise<boolean>;
  /** uid stops being a bot; whether it was one. */
  remove(uid: Uid): Promise<boolean>;
  /** Every bot, by uid (every instance read: the dispatcher caches it, bots are few). */
  list(): Promise<BotRecord[]>;
}

/** The bots table's column widths. */
export const BOT_COLUMN_CHARS = { webhookUrl: 2048 } as const;

/**
 * Where an outbox row sits and is delivered in order (webhooks, issue 18): `placeKey` places it
 * (a conversation id, or a uid for user and friend events); lane 0 holds a conversation's
 * message.after_send events by seq, lane 1 every other event of the key by a snowflake.
 */
export interface OutboxKey {
  placeKey: string;
  lane: number;
  /** Decimal: a seq in lane 0, a snowflake in lane 1. */
  pos: string;
}

/** A webhook event as the outbox holds it until every endpoint took it. */
export interface OutboxEvent extends OutboxKey {
  /** The webhook-id receivers drop repeats by. */
  eventId: string;
  type: string;
  /** The event's `data`, as JSON. */
  payloadJson: string;
  createdAt: number;
  attempts: number;
  /** Ms since the epoch before which it is not tried again. */
  nextAt: number;
  /** The endpoints that answered 2xx already. */
  deliveredTo: string[];
}

/** An event recorded on its own (not with a message): always lane 1. */
export type NewOutboxEvent = Pick<OutboxEvent, "placeKey" | "pos" | "eventId" | "type" | "payloadJson" | "createdAt">;

/**
 * The webhook outbox (issue 18): the message stores write a message's after-send row in the
 * message's own transaction (when built with it on); this port adds the other events and is
 * what the dispatcher reads and settles, one database instance at a time.
 */
export interface WebhookOutboxStore {
  /** The ids of the database instances, each dispatched on its own (one for a single database). */
  instances(): string[];
  /** Records events, each on its key's instance (sharded: behind its slot fence). */
  add(events: NewOutboxEvent[]): Promise<void>;
  /**
   * Up to `limit` rows not dead on the instance with a place key after `after` ("" = from the
   * start), in primary-key order: a lane's rows come in delivery order, its first one the next
   * to send. Sharded, rows the current map places elsewhere (a rebalance's copy, not yet
   * cleaned up) are left out.
   */
  scan(instance: string, after: string, limit: number): Promise<OutboxEvent[]>;
  /**
   * Delivered to every endpoint: the rows go, in one statement (a dispatcher's pass removes what
   * it delivered at its end, not one commit per event).
   */
  remove(instance: string, keys: OutboxKey[]): Promise<void>;
  /** An attempt failed: the next one waits until nextAt; dead keeps the row but stops trying. */
  retry(
    instance: string,
    key: OutboxKey,
    outcome: { attempts: number; nextAt: number; deliveredTo: string[]; dead: boolean; error: string },
  ): Promise<void>;
}
