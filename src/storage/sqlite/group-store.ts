import { AppError, ErrorCode } from "../../errors.js";
import { COLUMN_CHARS, groupConvId, requireChars } from "../../ids/identifiers.js";
import { fileRefToColumn } from "../file-ref.js";
import {
  checkMs,
  checkPoster,
  checkText,
  DISSOLVED_GROUP_CONVERSATION,
  type ModerationColumns,
  moderationOf,
  type PosterRow,
} from "../group-moderation.js";
import { extrasToColumn } from "../message-model.js";
import {
  GROUP_ROLE,
  type GroupInvitationRecord,
  type GroupJoinRequestRecord,
  type GroupMemberRecord,
  type GroupRecord,
  type GroupRoleValue,
  type GroupStore,
  type MessageExtras,
  type NewGroup,
  type NewGroupMessage,
  type StoredMessage,
  type Uid,
} from "../ports.js";
import { checkTtlSeconds, groupTtlOf } from "../retention/group-ttl.js";
import { afterSendRow } from "../webhook-outbox.js";
import type { SqliteDatabase } from "./database.js";
import { sqliteCall } from "./errors.js";
import { MESSAGE_COLUMNS, type MessageRow, messageInserter, toChatMessage } from "./message-rows.js";
import { canonicalId, requireCanonicalId } from "./uids.js";
import { outboxInserter } from "./webhook-outbox-store.js";

/** conversations.kind of a group conversation (1 is a 1:1 conversation). */
const GROUP_CONVERSATION = 2;
/** The MySQL schema's limits, kept so both backends accept the same input. */
const MAX_BODY_BYTES = 65_535;
/** What a new group's row is inserted with (the moderation columns start at their defaults). */
const NEW_GROUP_COLUMNS = "group_id, name, owner, member_count, created_at";
/** A group as every read answers it (toGroup), with its moderation columns. */
const GROUP_COLUMNS = `${NEW_GROUP_COLUMNS}, muted_all, announcement, announcement_by, announcement_at, join_approval, dissolved, message_ttl_seconds`;
/** GROUP_COLUMNS of chat_groups aliased g. */
const G_COLUMNS = GROUP_COLUMNS.split(", ")
  .map((column) => `g.${column}`)
  .join(", ");

interface GroupRow extends ModerationColumns {
  group_id: string;
  name: string;
  owner: Uid;
  member_count: number;
  created_at: number;
  message_ttl_seconds?: number;
}

/** A group row read for a change. */
interface OpenRow {
  member_count: number;
  dissolved: number;
}

/**
 * Groups in the SQLite file, with the semantics of MysqlGroupStore: each change is one
 * IMMEDIATE transaction (the file's write lock), so membership changes and appends are
 * serialized and member_count stays exact.
 */
export class SqliteGroupStore implements GroupStore {
  readonly #db: SqliteDatabase;
  readonly #createTx: (g: GroupRecord, uids: Uid[]) => void;
  readonly #addTx: (groupId: string, uids: Uid[], maxMembers: number) => Uid[];
  readonly #removeTx: (groupId: string, uid: Uid) => boolean;
  readonly #transferTx: (groupId: string, from: Uid, to: Uid) => boolean;
  readonly #inviteTx: (groupId: string, inviter: Uid, uids: Uid[], nowMs: number) => Uid[];
  readonly #answerTx: (groupId: string, uid: Uid, accept: boolean, sinceMs: number, maxMembers: number) => boolean;
  readonly #appendTx: (m: NewGroupMessage) => { message: StoredMessage; duplicate: boolean };
  readonly #changeGroupTx: (groupId: string, change: () => void) => GroupRecord | null;
  readonly #dissolveTx: (groupId: string, removeHistory: boolean) => Uid[];
  readonly #requestJoinTx: (request: GroupJoinRequestRecord) => void;
  readonly #answerJoinTx: (groupId: string, uid: Uid, accept: boolean, sinceMs: number, maxMembers: number) => boolean;

  /** options.afterSendOutbox (webhooks, issue 18): a group message's after-send row in its own transaction. */
  constructor(db: SqliteDatabase, options: { afterSendOutbox?: boolean } = {}) {
    this.#db = db;
    const insertAfterSend = options.afterSendOutbox ? outboxInserter(db) : undefined;
    const insertGroup = db.prepare<[string, string, string, number, number]>(
      `INSERT INTO chat_groups (${NEW_GROUP_COLUMNS}) VALUES (?, ?, ?, ?, ?)`,
    );
    const insertConversation = db.prepare<[string, number, number]>(
      "INSERT INTO conversations (conv_id, kind, last_seq, created_at) VALUES (?, ?, 0, ?)",
    );
    const insertMember = db.prepare<[string, string, number, number]>(
      "INSERT INTO group_members (group_id, uid, role, joined_at) VALUES (?, ?, ?, ?)",
    );
    const upsertCursor = db.prepare<[string, string, number, number, number]>(
      `INSERT INTO conversation_members (conv_id, uid, delivered_seq, read_seq, joined_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (conv_id, uid) DO UPDATE SET delivered_seq = excluded.delivered_seq,
         read_seq = excluded.read_seq, joined_at = excluded.joined_at`,
    );
    const groupCount = db.prepare<[string], OpenRow>(
      "SELECT member_count, dissolved FROM chat_groups WHERE group_id = ?",
    );
    const isGroupMember = db.prepare<[string, string]>("SELECT 1 FROM group_members WHERE group_id = ? AND uid = ?");
    const lastSeq = db.prepare<[string], { last_seq: number }>("SELECT last_seq FROM conversations WHERE conv_id = ?");
    const addCount = db.prepare<[number, string]>(
      "UPDATE chat_groups SET member_count = member_count + ? WHERE group_id = ?",
    );
    const deleteMember = db.prepare<[string, string]>("DELETE FROM group_members WHERE group_id = ? AND uid = ?");
    const deleteInvitation = db.prepare<[string, string]>(
      "DELETE FROM group_invitations WHERE group_id = ? AND uid = ?",
    );
    const deleteJoinRequest = db.prepare<[string, string]>(
      "DELETE FROM group_join_requests WHERE group_id = ? AND uid = ?",
    );
    const deleteCursor = db.prepare<[string, string]>("DELETE FROM conversation_members WHERE conv_id = ? AND uid = ?");
    // A member's delete-for-me marks go with its member row (and its hidden_count): one who
    // rejoins starts clean rather than with marks its count does not know of.
    const deleteHidden = db.prepare<[string, string]>("DELETE FROM message_hidden WHERE conv_id = ? AND uid = ?");
    // One read of the group row and the sender's member row: dissolved, member, muted.
    const poster = db.prepare<[string, string], PosterRow>(
      `SELECT g.dissolved, g.muted_all, gm.role, gm.muted_until
         FROM chat_groups g LEFT JOIN group_members gm ON gm.group_id = g.group_id AND gm.uid = ?
        WHERE g.group_id = ?`,
    );
    const byClientMsgId = db.prepare<[string, string, string], MessageRow>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE conv_id = ? AND sender = ? AND client_msg_id = ?`,
    );
    const nextSeq = db.prepare<[string], { last_seq: number }>(
      "UPDATE conversations SET last_seq = last_seq + 1 WHERE conv_id = ? RETURNING last_seq",
    );
    const insertMessage = messageInserter(db);
    // A member's mark never moves back: a later message's mention is the one the list shows.
    const markMentioned = db.prepare<[number, string, string]>(
      `UPDATE conversation_members SET mention_seq = max(mention_seq, ?)
        WHERE conv_id = ? AND uid IN (SELECT value FROM json_each(?))`,
    );
    const markMentionAll = db.prepare<[number, string]>(
      "UPDATE conversations SET mention_all_seq = ? WHERE conv_id = ?",
    );
    const moveSenderCursor = db.prepare<[number, number, number, string, string]>(
      `UPDATE conversation_members
          SET delivered_seq = CASE WHEN delivered_seq = ? - 1 THEN ? ELSE delivered_seq END,
              read_seq = max(read_seq, ?)
        WHERE conv_id = ? AND uid = ?`,
    );

    const addRows = (groupId: string, uids: Uid[], seq: number, now: number, owner?: Uid) => {
      const convId = groupConvId(groupId);
      for (const uid of uids) {
        insertMember.run(groupId, uid, uid === owner ? GROUP_ROLE.owner : GROUP_ROLE.member, now);
        upsertCursor.run(convId, uid, seq, seq, now);
      }
    };

    const create = db.transaction((g: GroupRecord, uids: Uid[]) => {
      if (groupCount.get(g.groupId)) throw new AppError(ErrorCode.INVALID_ARGUMENT, "group id already used");
      insertGroup.run(g.groupId, g.name, g.owner, uids.length, g.createdAt);
      insertConversation.run(g.convId, GROUP_CONVERSATION, g.createdAt);
      addRows(g.groupId, uids, 0, g.createdAt, g.owner);
    });
    this.#createTx = (g, uids) => create.immediate(g, uids);

    const add = db.transaction((groupId: string, uids: Uid[], maxMembers: number) => {
      const group = requireOpen(groupCount.get(groupId));
      const added = uids.filter((uid) => !isGroupMember.get(groupId, uid));
      if (added.length === 0) return [];
      const count = group.member_count + added.length;
      if (count > maxMembers) throw new AppError(ErrorCode.GROUP_TOO_LARGE, `${count} members > ${maxMembers}`);
      addRows(groupId, added, Number(lastSeq.get(groupConvId(groupId))?.last_seq ?? 0), Date.now());
      addCount.run(added.length, groupId);
      // A joiner's open invitation and join request are spent.
      for (const uid of added) {
        deleteInvitation.run(groupId, uid);
        deleteJoinRequest.run(groupId, uid);
      }
      return added;
    });
    this.#addTx = (groupId, uids, maxMembers) => add.immediate(groupId, uids, maxMembers);

    const upsertInvitation = db.prepare<[string, string, string, number]>(
      `INSERT INTO group_invitations (group_id, uid, inviter, created_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (group_id, uid) DO UPDATE SET inviter = excluded.inviter, created_at = excluded.created_at`,
    );
    const invite = db.transaction((groupId: string, inviter: Uid, uids: Uid[], nowMs: number) => {
      requireOpen(groupCount.get(groupId));
      const invited = uids.filter((uid) => !isGroupMember.get(groupId, uid));
      for (const uid of invited) upsertInvitation.run(groupId, uid, inviter, nowMs);
      return invited;
    });
    this.#inviteTx = (groupId, inviter, uids, nowMs) => invite.immediate(groupId, inviter, uids, nowMs);

    const openInvitation = db.prepare<[string, string], { created_at: number }>(
      "SELECT created_at FROM group_invitations WHERE group_id = ? AND uid = ?",
    );
    const answer = db.transaction((groupId: string, uid: Uid, accept: boolean, sinceMs: number, maxMembers: number) => {
      const group = groupCount.get(groupId);
      if (group) requireOpen(group);
      const open = openInvitation.get(groupId, uid);
      if (!open) return false;
      deleteInvitation.run(groupId, uid);
      if (open.created_at < sinceMs || !group) return false;
      // Inside this transaction: a full group throws, which rolls the delete back too.
      if (accept) add(groupId, [uid], maxMembers);
      return true;
    });
    this.#answerTx = (groupId, uid, accept, sinceMs, maxMembers) =>
      answer.immediate(groupId, uid, accept, sinceMs, maxMembers);

    const remove = db.transaction((groupId: string, uid: Uid) => {
      if (deleteMember.run(groupId, uid).changes === 0) return false;
      deleteCursor.run(groupConvId(groupId), uid);
      deleteHidden.run(groupConvId(groupId), uid);
      addCount.run(-1, groupId);
      return true;
    });
    this.#removeTx = (groupId, uid) => remove.immediate(groupId, uid);

    const ownerOf = db.prepare<[string], { owner: Uid }>("SELECT owner FROM chat_groups WHERE group_id = ?");
    const setOwner = db.prepare<[string, string]>("UPDATE chat_groups SET owner = ? WHERE group_id = ?");
    const setMemberRole = db.prepare<[number, string, string]>(
      "UPDATE group_members SET role = ? WHERE group_id = ? AND uid = ?",
    );
    const transfer = db.transaction((groupId: string, from: Uid, to: Uid) => {
      if (ownerOf.get(groupId)?.owner !== from || !isGroupMember.get(groupId, to)) return false;
      setOwner.run(to, groupId);
      setMemberRole.run(GROUP_ROLE.owner, groupId, to);
      setMemberRole.run(GROUP_ROLE.admin, groupId, from);
      return true;
    });
    this.#transferTx = (groupId, from, to) => transfer.immediate(groupId, from, to);

    const append = db.transaction((m: NewGroupMessage) => {
      const convId = groupConvId(m.groupId);
      checkPoster(poster.get(m.sender, m.groupId), m.sentAtMs);
      const stored = byClientMsgId.get(convId, m.sender, m.clientMsgId);
      if (stored) return { message: toChatMessage(stored), duplicate: true };
      const bumped = nextSeq.get(convId);
      if (!bumped) throw new AppError(ErrorCode.GROUP_NOT_FOUND);
      const seq = Number(bumped.last_seq);
      const row: MessageRow = {
        conv_id: convId,
        seq,
        msg_id: m.msgId,
        sender: m.sender,
        recipient: "0",
        client_msg_id: m.clientMsgId,
        kind: m.kind,
        body: m.text,
        sent_at: m.sentAtMs,
        file_json: fileRefToColumn(m.file),
        extras_json: extrasToColumn(m.extras),
      };
      insertMessage(row);
      moveSenderCursor.run(seq, seq, seq, convId, m.sender);
      const mentions = m.extras?.mentions;
      if (mentions && mentions.uids.length > 0) markMentioned.run(seq, convId, JSON.stringify(mentions.uids));
      if (mentions?.all) markMentionAll.run(seq, convId);
      const message = toChatMessage(row);
      insertAfterSend?.(afterSendRow(message, Date.now()));
      return { message, duplicate: false };
    });
    this.#appendTx = (m) => append.immediate(m);

    // ---- Moderation (issue 17).
    const groupRow = db.prepare<[string], GroupRow>(`SELECT ${GROUP_COLUMNS} FROM chat_groups WHERE group_id = ?`);
    const changeGroup = db.transaction((groupId: string, change: () => void) => {
      const group = groupCount.get(groupId);
      if (!group) return null;
      requireOpen(group);
      change();
      const row = groupRow.get(groupId);
      return row ? toGroup(row) : null;
    });
    this.#changeGroupTx = (groupId, change) => changeGroup.immediate(groupId, change);

    const memberUids = db.prepare<[string], { uid: Uid }>("SELECT uid FROM group_members WHERE group_id = ?");
    const markDissolved = db.prepare<[string]>(
      "UPDATE chat_groups SET dissolved = 1, member_count = 0 WHERE group_id = ?",
    );
    const dissolveConversation = db.prepare<[number, string]>("UPDATE conversations SET kind = ? WHERE conv_id = ?");
    const byGroup = ["group_members", "group_invitations", "group_join_requests"].map((table) =>
      db.prepare<[string]>(`DELETE FROM ${table} WHERE group_id = ?`),
    );
    const byConversation = ["message_reactions", "message_hidden", "messages", "conversation_members"].map((table) =>
      db.prepare<[string]>(`DELETE FROM ${table} WHERE conv_id = ?`),
    );
    const dissolve = db.transaction((groupId: string, removeHistory: boolean) => {
      if (!groupCount.get(groupId)) throw new AppError(ErrorCode.GROUP_NOT_FOUND);
      const convId = groupConvId(groupId);
      const former = memberUids.all(groupId).map((r) => r.uid);
      markDissolved.run(groupId);
      dissolveConversation.run(DISSOLVED_GROUP_CONVERSATION, convId);
      for (const statement of byGroup) statement.run(groupId);
      if (removeHistory) for (const statement of byConversation) statement.run(convId);
      return former;
    });
    this.#dissolveTx = (groupId, removeHistory) => dissolve.immediate(groupId, removeHistory);

    const upsertJoinRequest = db.prepare<[string, string, string, number]>(
      `INSERT INTO group_join_requests (group_id, uid, message, created_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (group_id, uid) DO UPDATE SET message = excluded.message, created_at = excluded.created_at`,
    );
    const requestJoin = db.transaction((r: GroupJoinRequestRecord) => {
      requireOpen(groupCount.get(r.groupId));
      if (isGroupMember.get(r.groupId, r.uid)) {
        throw new AppError(ErrorCode.INVALID_ARGUMENT, `${r.uid} is a member of group ${r.groupId}`);
      }
      upsertJoinRequest.run(r.groupId, r.uid, r.message, r.createdAt);
    });
    this.#requestJoinTx = (r) => requestJoin.immediate(r);

    const deleteExpiredJoinRequests = db.prepare<[string, number]>(
      "DELETE FROM group_join_requests WHERE group_id = ? AND created_at < ?",
    );
    const openJoinRequest = db.prepare<[string, string], { created_at: number }>(
      "SELECT created_at FROM group_join_requests WHERE group_id = ? AND uid = ?",
    );
    const answerJoin = db.transaction(
      (groupId: string, uid: Uid, accept: boolean, sinceMs: number, maxMembers: number) => {
        const group = groupCount.get(groupId);
        if (!group) return false;
        requireOpen(group);
        // The group's expired requests go first: nothing else deletes them.
        deleteExpiredJoinRequests.run(groupId, sinceMs);
        const open = openJoinRequest.get(groupId, uid);
        if (!open) return false;
        deleteJoinRequest.run(groupId, uid);
        if (open.created_at < sinceMs) return false;
        // Inside this transaction: a full group throws, which rolls the delete back too.
        if (accept) add(groupId, [uid], maxMembers);
        return true;
      },
    );
    this.#answerJoinTx = (groupId, uid, accept, sinceMs, maxMembers) =>
      answerJoin.immediate(groupId, uid, accept, sinceMs, maxMembers);
  }

  async create(g: NewGroup): Promise<GroupRecord> {
    const groupId = requireCanonicalId(g.groupId);
    checkName(g.name);
    const uids = uniqueIds([g.owner, ...g.members]);
    if (uids.length > g.maxMembers) {
      throw new AppError(ErrorCode.GROUP_TOO_LARGE, `${uids.length} members > ${g.maxMembers}`);
    }
    const owner = requireCanonicalId(g.owner);
    const record: GroupRecord = {
      groupId,
      convId: groupConvId(groupId),
      name: g.name,
      owner,
      memberCount: uids.length,
      createdAt: Date.now(),
    };
    call(() => this.#createTx(record, uids));
    return record;
  }

  async get(groupId: string): Promise<GroupRecord | null> {
    const id = canonicalId(groupId);
    if (id === null) return null;
    const row = call(() =>
      this.#db.prepare<[string], GroupRow>(`SELECT ${GROUP_COLUMNS} FROM chat_groups WHERE group_id = ?`).get(id),
    );
    return row ? toGroup(row) : null;
  }

  async roleOf(groupId: string, uid: Uid): Promise<GroupRoleValue | null> {
    const id = canonicalId(groupId);
    const member = canonicalId(uid);
    if (id === null || member === null) return null;
    const row = call(() =>
      this.#db
        .prepare<[string, string], { role: number }>("SELECT role FROM group_members WHERE group_id = ? AND uid = ?")
        .get(id, member),
    );
    return row ? (row.role as GroupRoleValue) : null;
  }

  async members(groupId: string, afterUid: Uid, limit: number): Promise<GroupMemberRecord[]> {
    const id = canonicalId(groupId);
    const after = canonicalId(afterUid);
    const take = Math.max(0, Math.floor(limit));
    if (id === null || after === null || take === 0) return [];
    // Ids are TEXT: ordered by length, then text, which is numeric order for canonical decimals.
    const rows = call(() =>
      this.#db
        .prepare<
          [string, number, number, string, number],
          { uid: Uid; role: number; joined_at: number; muted_until: number }
        >(
          `SELECT uid, role, joined_at, muted_until FROM group_members
            WHERE group_id = ? AND (length(uid) > ? OR (length(uid) = ? AND uid > ?))
            ORDER BY length(uid), uid LIMIT ?`,
        )
        .all(id, after.length, after.length, after, take),
    );
    return rows.map((r) => {
      const member: GroupMemberRecord = { uid: r.uid, role: r.role as GroupRoleValue, joinedAt: Number(r.joined_at) };
      // mutedUntil only when muted at some time (0 leaves it out), as on MySQL.
      if (Number(r.muted_until) > 0) member.mutedUntil = Number(r.muted_until);
      return member;
    });
  }

  async memberUids(groupId: string): Promise<Uid[]> {
    const id = canonicalId(groupId);
    if (id === null) return [];
    const rows = call(() =>
      this.#db.prepare<[string], { uid: Uid }>("SELECT uid FROM group_members WHERE group_id = ?").all(id),
    );
    return rows.map((r) => r.uid);
  }

  async addMembers(groupId: string, uids: Uid[], maxMembers: number): Promise<Uid[]> {
    const id = requireCanonicalId(groupId);
    const wanted = uniqueIds(uids);
    if (wanted.length === 0) return [];
    return call(() => this.#addTx(id, wanted, maxMembers));
  }

  async removeMember(groupId: string, uid: Uid): Promise<boolean> {
    const id = canonicalId(groupId);
    const member = canonicalId(uid);
    if (id === null || member === null) return false;
    return call(() => this.#removeTx(id, member));
  }

  async setRole(groupId: string, uid: Uid, role: GroupRoleValue): Promise<boolean> {
    const id = canonicalId(groupId);
    const member = canonicalId(uid);
    if (id === null || member === null) return false;
    const result = call(() =>
      this.#db
        .prepare<[number, string, string]>("UPDATE group_members SET role = ? WHERE group_id = ? AND uid = ?")
        .run(role, id, member),
    );
    return result.changes > 0;
  }

  async transferOwnership(groupId: string, from: Uid, to: Uid): Promise<boolean> {
    const id = canonicalId(groupId);
    const [owner, member] = [canonicalId(from), canonicalId(to)];
    if (id === null || owner === null || member === null || owner === member) return false;
    return call(() => this.#transferTx(id, owner, member));
  }

  async rename(groupId: string, name: string): Promise<GroupRecord | null> {
    checkName(name);
    const id = canonicalId(groupId);
    if (id === null) return null;
    call(() => this.#db.prepare<[string, string]>("UPDATE chat_groups SET name = ? WHERE group_id = ?").run(name, id));
    return this.get(id);
  }

  async groupsOf(uid: Uid, afterGroupId: string, limit: number): Promise<GroupRecord[]> {
    const member = canonicalId(uid);
    const after = canonicalId(afterGroupId);
    const take = Math.max(0, Math.floor(limit));
    if (member === null || after === null || take === 0) return [];
    // Canonical decimal text sorts as numbers by (length, text).
    const rows = call(() =>
      this.#db
        .prepare<[string, number, number, string, number], GroupRow>(
          `SELECT ${G_COLUMNS}
             FROM group_members gm JOIN chat_groups g ON g.group_id = gm.group_id
            WHERE gm.uid = ? AND (length(gm.group_id) > ? OR (length(gm.group_id) = ? AND gm.group_id > ?))
            ORDER BY length(gm.group_id), gm.group_id LIMIT ?`,
        )
        .all(member, after.length, after.length, after, take),
    );
    return rows.map(toGroup);
  }

  async invite(groupId: string, inviter: Uid, uids: Uid[], nowMs: number): Promise<Uid[]> {
    const id = requireCanonicalId(groupId);
    const by = requireCanonicalId(inviter);
    const wanted = uniqueIds(uids);
    if (wanted.length === 0) return [];
    return call(() => this.#inviteTx(id, by, wanted, nowMs));
  }

  async invitationsOf(uid: Uid, sinceMs: number, beforeMs: number, limit: number): Promise<GroupInvitationRecord[]> {
    const member = canonicalId(uid);
    const take = Math.max(0, Math.floor(limit));
    if (member === null || take === 0) return [];
    const rows = call(() => {
      this.#db
        .prepare<[string, number]>("DELETE FROM group_invitations WHERE uid = ? AND created_at < ?")
        .run(member, sinceMs);
      return this.#db
        .prepare<[string, number, number, number], GroupRow & { inviter: Uid; invited_at: number }>(
          `SELECT ${G_COLUMNS}, gi.inviter, gi.created_at AS invited_at
             FROM group_invitations gi JOIN chat_groups g ON g.group_id = gi.group_id
            WHERE gi.uid = ? AND gi.created_at >= ? AND gi.created_at < ?
            ORDER BY gi.created_at DESC, length(gi.group_id) DESC, gi.group_id DESC LIMIT ?`,
        )
        .all(member, sinceMs, beforeMs > 0 ? beforeMs : Number.MAX_SAFE_INTEGER, take);
    });
    return rows.map((r) => ({ group: toGroup(r), uid: member, inviter: r.inviter, createdAt: r.invited_at }));
  }

  async answerInvitation(
    groupId: string,
    uid: Uid,
    answer: { accept: boolean; sinceMs: number; maxMembers: number },
  ): Promise<GroupRecord | null> {
    const id = canonicalId(groupId);
    const member = canonicalId(uid);
    if (id === null || member === null) return null;
    const answered = call(() => this.#answerTx(id, member, answer.accept, answer.sinceMs, answer.maxMembers));
    return answered ? this.get(id) : null;
  }

  async append(m: NewGroupMessage): Promise<{ message: StoredMessage; duplicate: boolean }> {
    const checked: NewGroupMessage = {
      ...m,
      groupId: requireCanonicalId(m.groupId),
      msgId: requireCanonicalId(m.msgId),
      sender: requireCanonicalId(m.sender),
      extras: checkedExtras(m.extras),
    };
    requireChars(m.clientMsgId, COLUMN_CHARS.clientMsgId, "clientMsgId");
    if (typeof m.text !== "string" || Buffer.byteLength(m.text, "utf8") > MAX_BODY_BYTES) {
      throw new AppError(ErrorCode.INVALID_ARGUMENT, `text must be at most ${MAX_BODY_BYTES} bytes`);
    }
    if (!Number.isSafeInteger(m.sentAtMs))
      throw new AppError(ErrorCode.INVALID_ARGUMENT, "sentAtMs must be an integer");
    return call(() => this.#appendTx(checked));
  }

  // ---- Moderation (issue 17).

  async mute(groupId: string, uid: Uid, untilMs: number): Promise<boolean> {
    checkMs(untilMs, "untilMs");
    const id = canonicalId(groupId);
    const member = canonicalId(uid);
    if (id === null || member === null) return false;
    const result = call(() =>
      this.#db
        .prepare<[number, string, string]>("UPDATE group_members SET muted_until = ? WHERE group_id = ? AND uid = ?")
        .run(untilMs, id, member),
    );
    return result.changes > 0;
  }

  async setMutedAll(groupId: string, muted: boolean): Promise<GroupRecord | null> {
    return this.changeGroup(groupId, "muted_all = ?", [muted ? 1 : 0]);
  }

  async announce(groupId: string, text: string, by: Uid, atMs: number): Promise<GroupRecord | null> {
    checkText(text, "announcement");
    checkMs(atMs, "atMs");
    if (text === "") {
      return this.changeGroup(groupId, "announcement = NULL, announcement_by = '0', announcement_at = 0", []);
    }
    const author = requireCanonicalId(by);
    return this.changeGroup(groupId, "announcement = ?, announcement_by = ?, announcement_at = ?", [
      text,
      author,
      atMs,
    ]);
  }

  async setJoinApproval(groupId: string, required: boolean): Promise<GroupRecord | null> {
    return this.changeGroup(groupId, "join_approval = ?", [required ? 1 : 0]);
  }

  async dissolve(groupId: string, removeHistory: boolean): Promise<Uid[]> {
    const id = canonicalId(groupId);
    if (id === null) throw new AppError(ErrorCode.GROUP_NOT_FOUND);
    return call(() => this.#dissolveTx(id, removeHistory));
  }

  async requestJoin(request: GroupJoinRequestRecord): Promise<void> {
    const groupId = canonicalId(request.groupId);
    const uid = requireCanonicalId(request.uid);
    checkText(request.message, "message");
    checkMs(request.createdAt, "createdAt");
    if (groupId === null) throw new AppError(ErrorCode.GROUP_NOT_FOUND);
    call(() => this.#requestJoinTx({ groupId, uid, message: request.message, createdAt: request.createdAt }));
  }

  async joinRequests(groupId: string, sinceMs: number, limit: number): Promise<GroupJoinRequestRecord[]> {
    const id = canonicalId(groupId);
    const take = Math.max(0, Math.floor(limit));
    if (id === null || take === 0) return [];
    // Canonical decimal uids sort as numbers by (length, text).
    const rows = call(() =>
      this.#db
        .prepare<[string, number, number], { uid: Uid; message: string; created_at: number }>(
          `SELECT uid, message, created_at FROM group_join_requests
            WHERE group_id = ? AND created_at >= ? ORDER BY created_at DESC, length(uid) DESC, uid DESC LIMIT ?`,
        )
        .all(id, sinceMs, take),
    );
    return rows.map((r) => ({ groupId: id, uid: r.uid, message: r.message, createdAt: Number(r.created_at) }));
  }

  async answerJoin(
    groupId: string,
    uid: Uid,
    answer: { accept: boolean; sinceMs: number; maxMembers: number },
  ): Promise<boolean> {
    const id = canonicalId(groupId);
    const member = canonicalId(uid);
    if (id === null || member === null) return false;
    return call(() => this.#answerJoinTx(id, member, answer.accept, answer.sinceMs, answer.maxMembers));
  }

  async managers(groupId: string): Promise<Uid[]> {
    const id = canonicalId(groupId);
    if (id === null) return [];
    const rows = call(() =>
      this.#db
        .prepare<[string, number], { uid: Uid }>("SELECT uid FROM group_members WHERE group_id = ? AND role >= ?")
        .all(id, GROUP_ROLE.admin),
    );
    return rows.map((r) => r.uid);
  }

  /** One change of the group row (`set` with its params) in one transaction, unless dissolved; the row read back. */
  private async changeGroup(groupId: string, set: string, params: unknown[]): Promise<GroupRecord | null> {
    const id = canonicalId(groupId);
    if (id === null) return null;
    const update = this.#db.prepare(`UPDATE chat_groups SET ${set} WHERE group_id = ?`);
    return call(() => this.#changeGroupTx(id, () => update.run(...params, id)));
  }

  /** Retention (issue 17): one change of the group row, as the moderation settings are changed. */
  async setRetention(groupId: string, ttlSeconds: number): Promise<GroupRecord | null> {
    return this.changeGroup(groupId, "message_ttl_seconds = ?", [checkTtlSeconds(ttlSeconds)]);
  }
}

/** Mentioned uids as stored: canonical (they are matched against member rows), each once. */
function checkedExtras(extras: MessageExtras | undefined): MessageExtras | undefined {
  if (!extras?.mentions) return extras;
  return { ...extras, mentions: { uids: uniqueIds(extras.mentions.uids), all: extras.mentions.all === true } };
}

function checkName(name: string): void {
  requireChars(name, COLUMN_CHARS.groupName, "group name");
}

function uniqueIds(uids: Uid[]): Uid[] {
  return [...new Set(uids.map(requireCanonicalId))];
}

function toGroup(row: GroupRow): GroupRecord {
  return {
    groupId: row.group_id,
    convId: groupConvId(row.group_id),
    name: row.name,
    owner: row.owner,
    memberCount: Number(row.member_count),
    createdAt: Number(row.created_at),
    ...moderationOf(row),
    ...groupTtlOf(row),
  };
}

/** A group row read for a change: GROUP_NOT_FOUND when there is none, GROUP_DISSOLVED when dissolved. */
function requireOpen(row: OpenRow | undefined): OpenRow {
  if (!row) throw new AppError(ErrorCode.GROUP_NOT_FOUND);
  if (Number(row.dissolved) === 1) throw new AppError(ErrorCode.GROUP_DISSOLVED, "the group was dissolved");
  return row;
}

function call<T>(work: () => T): T {
  return sqliteCall(ErrorCode.STORAGE_UNAVAILABLE, "sqlite group store", work);
}
