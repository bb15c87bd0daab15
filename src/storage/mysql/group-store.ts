import type { ResultSetHeader, RowDataPacket } from "mysql2/promise";
import { AppError, ErrorCode } from "../../errors.js";
import { COLUMN_CHARS, groupConvId, isDecimalId, requireChars, storedId } from "../../ids/identifiers.js";
import {
  checkMs,
  checkPoster,
  checkText,
  DISSOLVED_GROUP_CONVERSATION,
  type ModerationColumns,
  moderationOf,
  type PosterRow,
} from "../group-moderation.js";
import { extrasToColumn, withModelColumns } from "../message-model.js";
import {
  GROUP_ROLE,
  type GroupInvitationRecord,
  type GroupJoinRequestRecord,
  type GroupMemberRecord,
  type GroupRecord,
  type GroupRoleValue,
  type GroupStore,
  type NewGroup,
  type NewGroupMessage,
  type StoredMessage,
  type Uid,
} from "../ports.js";
import { checkTtlSeconds, groupTtlOf } from "../retention/group-ttl.js";
import { isDuplicateKey, mysqlCode, mysqlError } from "./errors.js";
import { insertMessageRow, STORED_MESSAGE_COLUMNS, senderCursor, toChatMessage } from "./message-store.js";
import type { Pool } from "./pool.js";
import type { Connection } from "./timeouts.js";
import { inTransaction, retryingDeadlocks } from "./transaction.js";

/** conversations.kind of a group conversation (1 is a 1:1 conversation). */
export const GROUP_CONVERSATION = 2;
/** What a new group's row is inserted with (the moderation columns start at their defaults). */
const NEW_GROUP_COLUMNS = "group_id, name, owner, member_count, created_at";
/** A group as every read answers it (toGroup), with its moderation columns. */
const GROUP_COLUMNS = `${NEW_GROUP_COLUMNS}, muted_all, announcement, announcement_by, announcement_at, join_approval, dissolved, message_ttl_seconds`;
/** GROUP_COLUMNS of chat_groups aliased g. */
const G_COLUMNS = GROUP_COLUMNS.split(", ")
  .map((column) => `g.${column}`)
  .join(", ");

export interface MysqlGroupStoreOptions {
  /** config.MYSQL_DEADLOCK_RETRIES. */
  deadlockRetries?: number;
  /**
   * The sharded adapter's slot fence, run first in every write transaction with the group's
   * conversation id: a write to a slot a rebalance is moving is refused (SlotFencedError) and
   * retried on the slot's new owner, instead of landing on a copy being retired.
   */
  guard?: (conn: Connection, keys: readonly string[]) => Promise<void>;
  /** Webhooks (issue 18): a group message's after-send row in its own transaction (see MysqlMessageStoreOptions). */
  afterSendOutbox?: boolean;
}

/**
 * Groups on one MySQL instance. The group's rows, its conversation row and its members'
 * cursors are on this instance, so every change is one local transaction; the row of
 * chat_groups is locked by membership changes, which serializes them per group (member_count
 * stays exact). A group message locks the conversation row only, like a 1:1 message.
 */
export class MysqlGroupStore implements GroupStore {
  private readonly deadlockRetries: number;
  private readonly guard: MysqlGroupStoreOptions["guard"];
  private readonly afterSendOutbox: boolean;

  constructor(
    private readonly pool: Pool,
    options: MysqlGroupStoreOptions = {},
  ) {
    this.deadlockRetries = options.deadlockRetries ?? 5;
    this.guard = options.guard;
    this.afterSendOutbox = options.afterSendOutbox ?? false;
  }

  /** One write transaction on the group's rows, behind the slot fence when there is one. */
  private write<T>(groupId: string, work: (conn: Connection) => Promise<T>): Promise<T> {
    return inTransaction(this.pool, async (conn) => {
      await this.guard?.(conn, [groupConvId(groupId)]);
      return work(conn);
    });
  }

  async create(g: NewGroup): Promise<GroupRecord> {
    checkId(g.groupId);
    checkName(g.name);
    const uids = uniqueSorted([g.owner, ...g.members]);
    if (uids.length > g.maxMembers) {
      throw new AppError(ErrorCode.GROUP_TOO_LARGE, `${uids.length} members > ${g.maxMembers}`);
    }
    const now = Date.now();
    const convId = groupConvId(g.groupId);
    return storageCall(() =>
      this.write(g.groupId, async (conn) => {
        await conn.query(`INSERT INTO chat_groups (${NEW_GROUP_COLUMNS}) VALUES (?, ?, ?, ?, ?)`, [
          g.groupId,
          g.name,
          g.owner,
          uids.length,
          now,
        ]);
        await conn.query("INSERT INTO conversations (conv_id, kind, last_seq, created_at) VALUES (?, ?, 0, ?)", [
          convId,
          GROUP_CONVERSATION,
          now,
        ]);
        await insertMembers(conn, g.groupId, uids, 0, now, g.owner);
        return { groupId: g.groupId, convId, name: g.name, owner: g.owner, memberCount: uids.length, createdAt: now };
      }),
    );
  }

  async get(groupId: string): Promise<GroupRecord | null> {
    if (!isDecimalId(groupId)) return null;
    return storageCall(async () => {
      const [rows] = await this.pool.query<RowDataPacket[]>(
        `SELECT ${GROUP_COLUMNS} FROM chat_groups WHERE group_id = ?`,
        [groupId],
      );
      return rows[0] ? toGroup(rows[0]) : null;
    });
  }

  async roleOf(groupId: string, uid: Uid): Promise<GroupRoleValue | null> {
    if (!isDecimalId(groupId) || !isDecimalId(uid)) return null;
    return storageCall(async () => {
      const [rows] = await this.pool.query<RowDataPacket[]>(
        "SELECT role FROM group_members WHERE group_id = ? AND uid = ?",
        [groupId, uid],
      );
      return rows[0] ? (Number(rows[0].role) as GroupRoleValue) : null;
    });
  }

  async members(groupId: string, afterUid: Uid, limit: number): Promise<GroupMemberRecord[]> {
    if (!isDecimalId(groupId) || !isDecimalId(afterUid)) return [];
    const take = Math.max(0, Math.floor(limit));
    if (take === 0) return [];
    return storageCall(async () => {
      const [rows] = await this.pool.query<RowDataPacket[]>(
        "SELECT uid, role, joined_at, muted_until FROM group_members WHERE group_id = ? AND uid > ? ORDER BY uid LIMIT ?",
        [groupId, afterUid, take],
      );
      return rows.map((r) => toMember(r));
    });
  }

  async memberUids(groupId: string): Promise<Uid[]> {
    if (!isDecimalId(groupId)) return [];
    return storageCall(async () => {
      const [rows] = await this.pool.query<RowDataPacket[]>("SELECT uid FROM group_members WHERE group_id = ?", [
        groupId,
      ]);
      return rows.map((r) => storedId(r.uid));
    });
  }

  async addMembers(groupId: string, uids: Uid[], maxMembers: number): Promise<Uid[]> {
    checkId(groupId);
    const wanted = uniqueSorted(uids);
    if (wanted.length === 0) return [];
    return storageCall(() =>
      retryingDeadlocks(this.deadlockRetries, () =>
        this.write(groupId, (conn) => addIn(conn, groupId, wanted, maxMembers)),
      ),
    );
  }

  async removeMember(groupId: string, uid: Uid): Promise<boolean> {
    if (!isDecimalId(groupId) || !isDecimalId(uid)) return false;
    return storageCall(() =>
      retryingDeadlocks(this.deadlockRetries, () =>
        this.write(groupId, async (conn) => {
          const [group] = await conn.query<RowDataPacket[]>("SELECT 1 FROM chat_groups WHERE group_id = ? FOR UPDATE", [
            groupId,
          ]);
          if (!group[0]) return false;
          const [gone] = await conn.query<ResultSetHeader>("DELETE FROM group_members WHERE group_id = ? AND uid = ?", [
            groupId,
            uid,
          ]);
          if (gone.affectedRows === 0) return false;
          // Its delete-for-me marks go with its member row (whose hidden_count counted them): a
          // member who joins again starts afresh, as its cursors do.
          await conn.query(
            `DELETE FROM conversation_members WHERE conv_id = ? AND uid = ?;
             DELETE FROM message_hidden WHERE conv_id = ? AND uid = ?`,
            [groupConvId(groupId), uid, groupConvId(groupId), uid],
          );
          await conn.query("UPDATE chat_groups SET member_count = member_count - 1 WHERE group_id = ?", [groupId]);
          return true;
        }),
      ),
    );
  }

  async setRole(groupId: string, uid: Uid, role: GroupRoleValue): Promise<boolean> {
    if (!isDecimalId(groupId) || !isDecimalId(uid)) return false;
    return storageCall(() =>
      this.write(groupId, async (conn) => {
        const [result] = await conn.query<ResultSetHeader>(
          "UPDATE group_members SET role = ? WHERE group_id = ? AND uid = ?",
          [role, groupId, uid],
        );
        return result.affectedRows > 0;
      }),
    );
  }

  async transferOwnership(groupId: string, from: Uid, to: Uid): Promise<boolean> {
    if (!isDecimalId(groupId) || !isDecimalId(from) || !isDecimalId(to) || from === to) return false;
    return storageCall(() =>
      retryingDeadlocks(this.deadlockRetries, () =>
        this.write(groupId, async (conn) => {
          const [group] = await conn.query<RowDataPacket[]>(
            "SELECT 1 FROM chat_groups WHERE group_id = ? AND owner = ? FOR UPDATE",
            [groupId, from],
          );
          const [member] = await conn.query<RowDataPacket[]>(
            "SELECT 1 FROM group_members WHERE group_id = ? AND uid = ? FOR UPDATE",
            [groupId, to],
          );
          if (!group[0] || !member[0]) return false;
          await conn.query("UPDATE chat_groups SET owner = ? WHERE group_id = ?", [to, groupId]);
          await conn.query("UPDATE group_members SET role = ? WHERE group_id = ? AND uid = ?", [
            GROUP_ROLE.owner,
            groupId,
            to,
          ]);
          await conn.query("UPDATE group_members SET role = ? WHERE group_id = ? AND uid = ?", [
            GROUP_ROLE.admin,
            groupId,
            from,
          ]);
          return true;
        }),
      ),
    );
  }

  async rename(groupId: string, name: string): Promise<GroupRecord | null> {
    checkName(name);
    if (!isDecimalId(groupId)) return null;
    await storageCall(() =>
      this.write(groupId, (conn) => conn.query("UPDATE chat_groups SET name = ? WHERE group_id = ?", [name, groupId])),
    );
    return this.get(groupId);
  }

  async groupsOf(uid: Uid, afterGroupId: string, limit: number): Promise<GroupRecord[]> {
    const take = Math.max(0, Math.floor(limit));
    if (!isDecimalId(uid) || !isDecimalId(afterGroupId) || take === 0) return [];
    return storageCall(async () => {
      const [rows] = await this.pool.query<RowDataPacket[]>(
        `SELECT ${G_COLUMNS}
           FROM group_members gm JOIN chat_groups g ON g.group_id = gm.group_id
          WHERE gm.uid = ? AND gm.group_id > ? ORDER BY gm.group_id LIMIT ?`,
        [uid, afterGroupId, take],
      );
      return rows.map(toGroup);
    });
  }

  async invite(groupId: string, inviter: Uid, uids: Uid[], nowMs: number): Promise<Uid[]> {
    checkId(groupId);
    checkId(inviter);
    const wanted = uniqueSorted(uids);
    if (wanted.length === 0) return [];
    return storageCall(() =>
      this.write(groupId, async (conn) => {
        // Shared: invitations do not change member_count, but a member added meanwhile must be seen.
        const [group] = await conn.query<RowDataPacket[]>(
          "SELECT dissolved FROM chat_groups WHERE group_id = ? LOCK IN SHARE MODE",
          [groupId],
        );
        requireOpen(group[0]);
        const invited = await nonMembers(conn, groupId, wanted);
        if (invited.length === 0) return [];
        await conn.query(
          `INSERT INTO group_invitations (group_id, uid, inviter, created_at) VALUES ?
           ON DUPLICATE KEY UPDATE inviter = VALUES(inviter), created_at = VALUES(created_at)`,
          [invited.map((uid) => [groupId, uid, inviter, nowMs])],
        );
        return invited;
      }),
    );
  }

  async invitationsOf(uid: Uid, sinceMs: number, beforeMs: number, limit: number): Promise<GroupInvitationRecord[]> {
    const take = Math.max(0, Math.floor(limit));
    if (!isDecimalId(uid) || take === 0) return [];
    return storageCall(async () => {
      await this.pool.query("DELETE FROM group_invitations WHERE uid = ? AND created_at < ?", [uid, sinceMs]);
      const [rows] = await this.pool.query<RowDataPacket[]>(
        `SELECT ${G_COLUMNS}, gi.inviter, gi.created_at AS invited_at
           FROM group_invitations gi JOIN chat_groups g ON g.group_id = gi.group_id
          WHERE gi.uid = ? AND gi.created_at >= ? AND gi.created_at < ?
          ORDER BY gi.created_at DESC, gi.group_id DESC LIMIT ?`,
        [uid, sinceMs, beforeMs > 0 ? beforeMs : Number.MAX_SAFE_INTEGER, take],
      );
      return rows.map((r) => ({
        group: toGroup(r),
        uid,
        inviter: storedId(r.inviter),
        createdAt: Number(r.invited_at),
      }));
    });
  }

  /** Whether uid holds an open invitation into groupId created at or after sinceMs. */
  hasInvitation(groupId: string, uid: Uid, sinceMs: number): Promise<boolean> {
    return this.hasOpen("group_invitations", groupId, uid, sinceMs);
  }

  async answerInvitation(
    groupId: string,
    uid: Uid,
    answer: { accept: boolean; sinceMs: number; maxMembers: number },
  ): Promise<GroupRecord | null> {
    if (!isDecimalId(groupId) || !isDecimalId(uid)) return null;
    return storageCall(() =>
      retryingDeadlocks(this.deadlockRetries, () =>
        this.write(groupId, async (conn) => {
          // The group row first, as every membership change locks it (one lock order).
          const [group] = await conn.query<RowDataPacket[]>(
            "SELECT dissolved FROM chat_groups WHERE group_id = ? FOR UPDATE",
            [groupId],
          );
          if (group[0]) requireOpen(group[0]);
          const invitedAt = await takeOpen(conn, "group_invitations", groupId, uid);
          if (invitedAt === null) return null;
          if (!group[0] || invitedAt < answer.sinceMs) return null;
          if (answer.accept) await addIn(conn, groupId, [storedId(BigInt(uid))], answer.maxMembers);
          const [rows] = await conn.query<RowDataPacket[]>(
            `SELECT ${GROUP_COLUMNS} FROM chat_groups WHERE group_id = ?`,
            [groupId],
          );
          return rows[0] ? toGroup(rows[0]) : null;
        }),
      ),
    );
  }

  /** The groups among groupIds that uid is in (the sharded store's index names candidates). */
  async groupsAmong(uid: Uid, groupIds: string[]): Promise<GroupRecord[]> {
    const ids = groupIds.filter((id) => isDecimalId(id));
    if (!isDecimalId(uid) || ids.length === 0) return [];
    return storageCall(async () => {
      const [rows] = await this.pool.query<RowDataPacket[]>(
        `SELECT ${G_COLUMNS}
           FROM group_members gm JOIN chat_groups g ON g.group_id = gm.group_id
          WHERE gm.uid = ? AND gm.group_id IN (?)`,
        [uid, ids],
      );
      return rows.map(toGroup);
    });
  }

  // ---- Moderation (issue 17).

  async mute(groupId: string, uid: Uid, untilMs: number): Promise<boolean> {
    checkMs(untilMs, "untilMs");
    if (!isDecimalId(groupId) || !isDecimalId(uid)) return false;
    return storageCall(() =>
      this.write(groupId, async (conn) => {
        const [result] = await conn.query<ResultSetHeader>(
          "UPDATE group_members SET muted_until = ? WHERE group_id = ? AND uid = ?",
          [untilMs, groupId, uid],
        );
        return result.affectedRows > 0;
      }),
    );
  }

  setMutedAll(groupId: string, muted: boolean): Promise<GroupRecord | null> {
    return this.changeGroup(groupId, "muted_all = ?", [muted ? 1 : 0]);
  }

  async announce(groupId: string, text: string, by: Uid, atMs: number): Promise<GroupRecord | null> {
    checkText(text, "announcement");
    checkMs(atMs, "atMs");
    if (text === "")
      return this.changeGroup(groupId, "announcement = NULL, announcement_by = 0, announcement_at = 0", []);
    checkId(by);
    return this.changeGroup(groupId, "announcement = ?, announcement_by = ?, announcement_at = ?", [text, by, atMs]);
  }

  setJoinApproval(groupId: string, required: boolean): Promise<GroupRecord | null> {
    return this.changeGroup(groupId, "join_approval = ?", [required ? 1 : 0]);
  }

  /**
   * One transaction: the group row locked, then its conversation row (appends and message changes
   * take it first, so one in flight finishes before, and any later finds the conversation
   * dissolved), the member uids read, and the rows deleted in one round trip. member_count
   * becomes 0.
   */
  async dissolve(groupId: string, removeHistory: boolean): Promise<Uid[]> {
    if (!isDecimalId(groupId)) throw new AppError(ErrorCode.GROUP_NOT_FOUND);
    const convId = groupConvId(groupId);
    return storageCall(() =>
      retryingDeadlocks(this.deadlockRetries, () =>
        this.write(groupId, async (conn) => {
          const [group] = await conn.query<RowDataPacket[]>("SELECT 1 FROM chat_groups WHERE group_id = ? FOR UPDATE", [
            groupId,
          ]);
          if (!group[0]) throw new AppError(ErrorCode.GROUP_NOT_FOUND);
          await conn.query("UPDATE conversations SET kind = ? WHERE conv_id = ?", [
            DISSOLVED_GROUP_CONVERSATION,
            convId,
          ]);
          const [members] = await conn.query<RowDataPacket[]>(
            "SELECT uid FROM group_members WHERE group_id = ? FOR UPDATE",
            [groupId],
          );
          const history = removeHistory
            ? `;
               DELETE FROM message_reactions WHERE conv_id = ?;
               DELETE FROM message_hidden WHERE conv_id = ?;
               DELETE FROM messages WHERE conv_id = ?;
               DELETE FROM conversation_members WHERE conv_id = ?`
            : "";
          await conn.query(
            `UPDATE chat_groups SET dissolved = 1, member_count = 0 WHERE group_id = ?;
             DELETE FROM group_members WHERE group_id = ?;
             DELETE FROM group_invitations WHERE group_id = ?;
             DELETE FROM group_join_requests WHERE group_id = ?${history}`,
            [groupId, groupId, groupId, groupId, ...(removeHistory ? [convId, convId, convId, convId] : [])],
          );
          return members.map((r) => storedId(r.uid));
        }),
      ),
    );
  }

  async requestJoin(request: GroupJoinRequestRecord): Promise<void> {
    const { groupId, uid } = request;
    checkId(uid);
    checkText(request.message, "message");
    checkMs(request.createdAt, "createdAt");
    if (!isDecimalId(groupId)) throw new AppError(ErrorCode.GROUP_NOT_FOUND);
    await storageCall(() =>
      retryingDeadlocks(this.deadlockRetries, () =>
        this.write(groupId, async (conn) => {
          // Shared, as invite: a join request changes no count, but a member added meanwhile must be seen.
          const [group] = await conn.query<RowDataPacket[]>(
            "SELECT dissolved FROM chat_groups WHERE group_id = ? LOCK IN SHARE MODE",
            [groupId],
          );
          requireOpen(group[0]);
          const [member] = await conn.query<RowDataPacket[]>(
            "SELECT 1 FROM group_members WHERE group_id = ? AND uid = ?",
            [groupId, uid],
          );
          if (member[0]) throw new AppError(ErrorCode.INVALID_ARGUMENT, `${uid} is a member of group ${groupId}`);
          await conn.query(
            `INSERT INTO group_join_requests (group_id, uid, message, created_at) VALUES (?, ?, ?, ?)
             ON DUPLICATE KEY UPDATE message = VALUES(message), created_at = VALUES(created_at)`,
            [groupId, uid, request.message, request.createdAt],
          );
        }),
      ),
    );
  }

  async joinRequests(groupId: string, sinceMs: number, limit: number): Promise<GroupJoinRequestRecord[]> {
    const take = Math.max(0, Math.floor(limit));
    if (!isDecimalId(groupId) || take === 0) return [];
    return storageCall(async () => {
      const [rows] = await this.pool.query<RowDataPacket[]>(
        `SELECT uid, message, created_at FROM group_join_requests
          WHERE group_id = ? AND created_at >= ? ORDER BY created_at DESC, uid DESC LIMIT ?`,
        [groupId, sinceMs, take],
      );
      return rows.map((r) => ({
        groupId,
        uid: storedId(r.uid),
        message: String(r.message),
        createdAt: Number(r.created_at),
      }));
    });
  }

  /** Whether uid has an open join request into groupId created at or after sinceMs. */
  hasJoinRequest(groupId: string, uid: Uid, sinceMs: number): Promise<boolean> {
    return this.hasOpen("group_join_requests", groupId, uid, sinceMs);
  }

  /** As answerInvitation: the group row first, the request deleted, the member added (addIn) in the same transaction. */
  async answerJoin(
    groupId: string,
    uid: Uid,
    answer: { accept: boolean; sinceMs: number; maxMembers: number },
  ): Promise<boolean> {
    if (!isDecimalId(groupId) || !isDecimalId(uid)) return false;
    return storageCall(() =>
      retryingDeadlocks(this.deadlockRetries, () =>
        this.write(groupId, async (conn) => {
          const [group] = await conn.query<RowDataPacket[]>(
            "SELECT dissolved FROM chat_groups WHERE group_id = ? FOR UPDATE",
            [groupId],
          );
          if (!group[0]) return false;
          requireOpen(group[0]);
          // The group's expired requests go first (by idx_group_join_requests_time): nothing else deletes them.
          await conn.query("DELETE FROM group_join_requests WHERE group_id = ? AND created_at < ?", [
            groupId,
            answer.sinceMs,
          ]);
          const requestedAt = await takeOpen(conn, "group_join_requests", groupId, uid);
          if (requestedAt === null || requestedAt < answer.sinceMs) return false;
          if (answer.accept) await addIn(conn, groupId, [storedId(BigInt(uid))], answer.maxMembers);
          return true;
        }),
      ),
    );
  }

  async managers(groupId: string): Promise<Uid[]> {
    if (!isDecimalId(groupId)) return [];
    return storageCall(async () => {
      const [rows] = await this.pool.query<RowDataPacket[]>(
        "SELECT uid FROM group_members WHERE group_id = ? AND role >= ?",
        [groupId, GROUP_ROLE.admin],
      );
      return rows.map((r) => storedId(r.uid));
    });
  }

  private async hasOpen(table: OpenRowTable, groupId: string, uid: Uid, sinceMs: number): Promise<boolean> {
    if (!isDecimalId(groupId) || !isDecimalId(uid)) return false;
    return storageCall(async () => {
      const [rows] = await this.pool.query<RowDataPacket[]>(
        `SELECT 1 FROM ${table} WHERE group_id = ? AND uid = ? AND created_at >= ?`,
        [groupId, uid, sinceMs],
      );
      return rows.length > 0;
    });
  }

  /**
   * One change of the group row (`set` with its params) behind the guard, unless it is dissolved,
   * and the row read back in the same transaction: null when there is no such group,
   * GROUP_DISSOLVED when dissolved.
   */
  private async changeGroup(groupId: string, set: string, params: unknown[]): Promise<GroupRecord | null> {
    if (!isDecimalId(groupId)) return null;
    return storageCall(() =>
      this.write(groupId, async (conn) => {
        await conn.query(`UPDATE chat_groups SET ${set} WHERE group_id = ? AND dissolved = 0`, [...params, groupId]);
        const [rows] = await conn.query<RowDataPacket[]>(
          `SELECT ${GROUP_COLUMNS} FROM chat_groups WHERE group_id = ?`,
          [groupId],
        );
        return rows[0] ? toGroup(requireOpen(rows[0])) : null;
      }),
    );
  }

  async append(m: NewGroupMessage): Promise<{ message: StoredMessage; duplicate: boolean }> {
    checkMessage(m);
    const convId = groupConvId(m.groupId);
    return storageCall(async () => {
      // One read of the group row and the sender's member row: dissolved, member, muted.
      const [poster] = await this.pool.query<(RowDataPacket & PosterRow)[]>(
        `SELECT g.dissolved, g.muted_all, gm.role, gm.muted_until
           FROM chat_groups g LEFT JOIN group_members gm ON gm.group_id = g.group_id AND gm.uid = ?
          WHERE g.group_id = ?`,
        [m.sender, m.groupId],
      );
      checkPoster(poster[0], m.sentAtMs);
      const stored = await this.byClientMsgId(convId, m);
      if (stored) return { message: stored, duplicate: true };
      try {
        const message = await retryingDeadlocks(this.deadlockRetries, () =>
          this.write(m.groupId, (conn) => this.insert(conn, convId, m)),
        );
        return { message, duplicate: false };
      } catch (err) {
        if (mysqlCode(err) !== "ER_DUP_ENTRY") throw err;
        const winner = await this.byClientMsgId(convId, m);
        if (winner) return { message: winner, duplicate: true };
        throw new AppError(ErrorCode.INTERNAL, `msg_id ${m.msgId} is already used by another message`);
      }
    });
  }

  /**
   * One message row and one conversation row, whatever the group's size: members' cursors
   * are not touched (they move when members ack), except the sender's own.
   */
  private async insert(conn: Connection, convId: string, m: NewGroupMessage): Promise<StoredMessage> {
    // Not in a dissolved group's conversation: a dissolve that committed since the check above wins.
    const [bumped] = await conn.query<ResultSetHeader>(
      "UPDATE conversations SET last_seq = last_seq + 1 WHERE conv_id = ? AND kind <> ?",
      [convId, DISSOLVED_GROUP_CONVERSATION],
    );
    if (bumped.affectedRows === 0) {
      const [conv] = await conn.query<RowDataPacket[]>("SELECT 1 FROM conversations WHERE conv_id = ?", [convId]);
      throw conv[0]
        ? new AppError(ErrorCode.GROUP_DISSOLVED, "the group was dissolved")
        : new AppError(ErrorCode.GROUP_NOT_FOUND);
    }
    const [seqRows] = await conn.query<RowDataPacket[]>("SELECT last_seq FROM conversations WHERE conv_id = ?", [
      convId,
    ]);
    const seq = Number(seqRows[0]?.last_seq);
    // Checked again under the conversation lock: a kick that committed meanwhile wins.
    const [member] = await conn.query<RowDataPacket[]>(
      "SELECT delivered_seq FROM conversation_members WHERE conv_id = ? AND uid = ? FOR UPDATE",
      [convId, m.sender],
    );
    if (member.length === 0) throw new AppError(ErrorCode.NOT_GROUP_MEMBER);
    const extras = extrasToColumn(m.extras);
    const message = withModelColumns(
      {
        convId,
        msgId: m.msgId,
        seq,
        sender: m.sender,
        recipient: "0",
        clientMsgId: m.clientMsgId,
        kind: m.kind,
        text: m.text,
        sentAtMs: String(m.sentAtMs),
        file: m.file,
      },
      { extras_json: extras },
    );
    // With its webhook outbox row when configured, in the same round trip.
    await insertMessageRow(conn, message, extras, this.afterSendOutbox);
    // As in 1:1: the sender's cursor passes its own message only if it had everything before.
    const cursor = senderCursor(convId, m.sender, seq);
    await conn.query(cursor.sql, cursor.params);
    await markMentions(conn, convId, seq, m);
    return message;
  }

  private async byClientMsgId(convId: string, m: NewGroupMessage): Promise<StoredMessage | null> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT ${STORED_MESSAGE_COLUMNS} FROM messages WHERE conv_id = ? AND sender = ? AND client_msg_id = ?`,
      [convId, m.sender, m.clientMsgId],
    );
    return rows[0] ? toChatMessage(rows[0]) : null;
  }

  /** Retention (issue 17): one change of the group row, as the moderation settings are changed. */
  async setRetention(groupId: string, ttlSeconds: number): Promise<GroupRecord | null> {
    return this.changeGroup(groupId, "message_ttl_seconds = ?", [checkTtlSeconds(ttlSeconds)]);
  }
}

/**
 * The conversation list's mention marks (mentioned = a mark past the member's read cursor): the
 * mentioned members' rows, or the conversation's own for everyone. A message without mentions
 * writes nothing more.
 */
async function markMentions(conn: Connection, convId: string, seq: number, m: NewGroupMessage): Promise<void> {
  const mentions = m.extras?.mentions;
  if (!mentions) return;
  if (mentions.uids.length > 0) {
    // In uid order (the PK order), as every writer locks member rows.
    await conn.query(
      "UPDATE conversation_members SET mention_seq = GREATEST(mention_seq, ?) WHERE conv_id = ? AND uid IN (?)",
      [seq, convId, uniqueSorted(mentions.uids)],
    );
  }
  if (mentions.all) {
    await conn.query("UPDATE conversations SET mention_all_seq = ? WHERE conv_id = ?", [seq, convId]);
  }
}

/**
 * Adds the wanted uids (canonical, sorted) that are not members yet, inside conn's transaction;
 * answers them. Locks the group row, as every membership change does.
 */
async function addIn(conn: Connection, groupId: string, wanted: Uid[], maxMembers: number): Promise<Uid[]> {
  const [group] = await conn.query<RowDataPacket[]>(
    "SELECT member_count, dissolved FROM chat_groups WHERE group_id = ? FOR UPDATE",
    [groupId],
  );
  const { member_count } = requireOpen(group[0]);
  const added = await nonMembers(conn, groupId, wanted);
  if (added.length === 0) return [];
  const count = Number(member_count) + added.length;
  if (count > maxMembers) throw new AppError(ErrorCode.GROUP_TOO_LARGE, `${count} members > ${maxMembers}`);
  // New members start at the conversation's end: they get what is sent from now on, and read
  // older messages with history. A joiner's open invitation and join request are spent.
  const [conv] = await conn.query<RowDataPacket[]>("SELECT last_seq FROM conversations WHERE conv_id = ?", [
    groupConvId(groupId),
  ]);
  await insertMembers(conn, groupId, added, Number(conv[0]?.last_seq ?? 0), Date.now());
  await conn.query("UPDATE chat_groups SET member_count = member_count + ? WHERE group_id = ?", [
    added.length,
    groupId,
  ]);
  await conn.query(
    `DELETE FROM group_invitations WHERE group_id = ? AND uid IN (?);
     DELETE FROM group_join_requests WHERE group_id = ? AND uid IN (?)`,
    [groupId, added, groupId, added],
  );
  return added;
}

/** The tables of what waits for an answer: an invitation into a group, a request to join one. */
type OpenRowTable = "group_invitations" | "group_join_requests";

/** Locks and deletes uid's open row in `table`, answered or not: its created_at, or null when there is none. */
async function takeOpen(conn: Connection, table: OpenRowTable, groupId: string, uid: Uid): Promise<number | null> {
  const [open] = await conn.query<RowDataPacket[]>(
    `SELECT created_at FROM ${table} WHERE group_id = ? AND uid = ? FOR UPDATE`,
    [groupId, uid],
  );
  if (!open[0]) return null;
  await conn.query(`DELETE FROM ${table} WHERE group_id = ? AND uid = ?`, [groupId, uid]);
  return Number(open[0].created_at);
}

/** The uids of `wanted` (canonical) that are not members of the group. */
async function nonMembers(conn: Connection, groupId: string, wanted: Uid[]): Promise<Uid[]> {
  const [present] = await conn.query<RowDataPacket[]>(
    "SELECT uid FROM group_members WHERE group_id = ? AND uid IN (?)",
    [groupId, wanted],
  );
  const members = new Set(present.map((r) => storedId(r.uid)));
  return wanted.filter((uid) => !members.has(uid));
}

/** Member rows and their conversation cursors (at `seq`), one multi-row insert each. */
async function insertMembers(
  conn: Connection,
  groupId: string,
  uids: Uid[],
  seq: number,
  now: number,
  owner?: Uid,
): Promise<void> {
  const convId = groupConvId(groupId);
  await conn.query("INSERT INTO group_members (group_id, uid, role, joined_at) VALUES ?", [
    uids.map((uid) => [groupId, uid, uid === owner ? GROUP_ROLE.owner : GROUP_ROLE.member, now]),
  ]);
  await conn.query(
    `INSERT INTO conversation_members (conv_id, uid, delivered_seq, read_seq, joined_at) VALUES ?
     ON DUPLICATE KEY UPDATE delivered_seq = VALUES(delivered_seq), read_seq = VALUES(read_seq), joined_at = VALUES(joined_at)`,
    [uids.map((uid) => [convId, uid, seq, seq, now])],
  );
}

function checkId(id: string): void {
  if (!isDecimalId(id)) throw new AppError(ErrorCode.INVALID_ARGUMENT, `"${id}" is not a decimal id`);
}

function checkName(name: string): void {
  requireChars(name, COLUMN_CHARS.groupName, "group name");
}

function checkMessage(m: NewGroupMessage): void {
  for (const id of [m.groupId, m.msgId, m.sender, ...(m.extras?.mentions?.uids ?? [])]) checkId(id);
  requireChars(m.clientMsgId, COLUMN_CHARS.clientMsgId, "clientMsgId");
  if (!Number.isSafeInteger(m.sentAtMs)) throw new AppError(ErrorCode.INVALID_ARGUMENT, "sentAtMs must be an integer");
}

/** Each id once, as canonical decimal text, in numeric order (the PK order: one lock order). */
export function uniqueSorted(uids: Uid[]): Uid[] {
  for (const uid of uids) checkId(uid);
  const unique = [...new Set(uids.map((uid) => BigInt(uid)))];
  return unique.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).map(storedId);
}

function toGroup(row: RowDataPacket): GroupRecord {
  const groupId = String(row.group_id);
  return {
    groupId,
    convId: groupConvId(groupId),
    name: String(row.name),
    owner: storedId(row.owner),
    memberCount: Number(row.member_count),
    createdAt: Number(row.created_at),
    ...moderationOf(row as RowDataPacket & ModerationColumns),
    ...groupTtlOf(row),
  };
}

/** A member row; mutedUntil only when muted at some time (0 leaves it out). */
function toMember(row: RowDataPacket): GroupMemberRecord {
  const member: GroupMemberRecord = {
    uid: storedId(row.uid),
    role: Number(row.role) as GroupRoleValue,
    joinedAt: Number(row.joined_at),
  };
  const mutedUntil = Number(row.muted_until ?? 0);
  if (mutedUntil > 0) member.mutedUntil = mutedUntil;
  return member;
}

/** A group row read for a change: GROUP_NOT_FOUND when there is none, GROUP_DISSOLVED when dissolved. */
function requireOpen(row: RowDataPacket | undefined): RowDataPacket {
  if (!row) throw new AppError(ErrorCode.GROUP_NOT_FOUND);
  if (Number(row.dissolved) === 1) throw new AppError(ErrorCode.GROUP_DISSOLVED, "the group was dissolved");
  return row;
}

/** Driver failures in the error table (see mysql/errors.ts); a group id taken twice is the caller's. */
async function storageCall<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (isDuplicateKey(err) && /chat_groups|conversations/.test((err as Error).message)) {
      throw new AppError(ErrorCode.INVALID_ARGUMENT, "group id already used");
    }
    throw mysqlError(ErrorCode.STORAGE_UNAVAILABLE, "group store", err);
  }
}
