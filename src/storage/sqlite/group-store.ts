import { AppError, ErrorCode } from "../../errors.js";
import { COLUMN_CHARS, groupConvId, requireChars } from "../../ids/identifiers.js";
import { fileRefToColumn } from "../file-ref.js";
import { extrasToColumn } from "../message-model.js";
import {
  GROUP_ROLE,
  type GroupInvitationRecord,
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
import type { SqliteDatabase } from "./database.js";
import { sqliteCall } from "./errors.js";
import { MESSAGE_COLUMNS, type MessageRow, messageInserter, toChatMessage } from "./message-rows.js";
import { canonicalId, requireCanonicalId } from "./uids.js";

/** conversations.kind of a group conversation (1 is a 1:1 conversation). */
const GROUP_CONVERSATION = 2;
/** The MySQL schema's limits, kept so both backends accept the same input. */
const MAX_BODY_BYTES = 65_535;
const GROUP_COLUMNS = "group_id, name, owner, member_count, created_at";

interface GroupRow {
  group_id: string;
  name: string;
  owner: Uid;
  member_count: number;
  created_at: number;
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

  constructor(db: SqliteDatabase) {
    this.#db = db;
    const insertGroup = db.prepare<[string, string, string, number, number]>(
      `INSERT INTO chat_groups (${GROUP_COLUMNS}) VALUES (?, ?, ?, ?, ?)`,
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
    const groupCount = db.prepare<[string], { member_count: number }>(
      "SELECT member_count FROM chat_groups WHERE group_id = ?",
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
    const deleteCursor = db.prepare<[string, string]>("DELETE FROM conversation_members WHERE conv_id = ? AND uid = ?");
    // A member's delete-for-me marks go with its member row (and its hidden_count): one who
    // rejoins starts clean rather than with marks its count does not know of.
    const deleteHidden = db.prepare<[string, string]>("DELETE FROM message_hidden WHERE conv_id = ? AND uid = ?");
    const isConvMember = db.prepare<[string, string]>(
      "SELECT 1 FROM conversation_members WHERE conv_id = ? AND uid = ?",
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
      const group = groupCount.get(groupId);
      if (!group) throw new AppError(ErrorCode.GROUP_NOT_FOUND);
      const added = uids.filter((uid) => !isGroupMember.get(groupId, uid));
      if (added.length === 0) return [];
      const count = group.member_count + added.length;
      if (count > maxMembers) throw new AppError(ErrorCode.GROUP_TOO_LARGE, `${count} members > ${maxMembers}`);
      addRows(groupId, added, Number(lastSeq.get(groupConvId(groupId))?.last_seq ?? 0), Date.now());
      addCount.run(added.length, groupId);
      // A joiner's open invitation is spent.
      for (const uid of added) deleteInvitation.run(groupId, uid);
      return added;
    });
    this.#addTx = (groupId, uids, maxMembers) => add.immediate(groupId, uids, maxMembers);

    const upsertInvitation = db.prepare<[string, string, string, number]>(
      `INSERT INTO group_invitations (group_id, uid, inviter, created_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (group_id, uid) DO UPDATE SET inviter = excluded.inviter, created_at = excluded.created_at`,
    );
    const invite = db.transaction((groupId: string, inviter: Uid, uids: Uid[], nowMs: number) => {
      if (!groupCount.get(groupId)) throw new AppError(ErrorCode.GROUP_NOT_FOUND);
      const invited = uids.filter((uid) => !isGroupMember.get(groupId, uid));
      for (const uid of invited) upsertInvitation.run(groupId, uid, inviter, nowMs);
      return invited;
    });
    this.#inviteTx = (groupId, inviter, uids, nowMs) => invite.immediate(groupId, inviter, uids, nowMs);

    const openInvitation = db.prepare<[string, string], { created_at: number }>(
      "SELECT created_at FROM group_invitations WHERE group_id = ? AND uid = ?",
    );
    const answer = db.transaction((groupId: string, uid: Uid, accept: boolean, sinceMs: number, maxMembers: number) => {
      const open = openInvitation.get(groupId, uid);
      if (!open) return false;
      deleteInvitation.run(groupId, uid);
      if (open.created_at < sinceMs || !groupCount.get(groupId)) return false;
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
      if (!isConvMember.get(convId, m.sender)) throw new AppError(ErrorCode.NOT_GROUP_MEMBER);
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
      return { message: toChatMessage(row), duplicate: false };
    });
    this.#appendTx = (m) => append.immediate(m);
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
        .prepare<[string, number, number, string, number], { uid: Uid; role: number; joined_at: number }>(
          `SELECT uid, role, joined_at FROM group_members
            WHERE group_id = ? AND (length(uid) > ? OR (length(uid) = ? AND uid > ?))
            ORDER BY length(uid), uid LIMIT ?`,
        )
        .all(id, after.length, after.length, after, take),
    );
    return rows.map((r) => ({ uid: r.uid, role: r.role as GroupRoleValue, joinedAt: Number(r.joined_at) }));
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
          `SELECT g.group_id, g.name, g.owner, g.member_count, g.created_at
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
          `SELECT g.group_id, g.name, g.owner, g.member_count, g.created_at, gi.inviter, gi.created_at AS invited_at
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
  };
}

function call<T>(work: () => T): T {
  return sqliteCall(ErrorCode.STORAGE_UNAVAILABLE, "sqlite group store", work);
}
