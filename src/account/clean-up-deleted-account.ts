import type { Config } from "../config/settings.js";
import { AppError, ErrorCode } from "../errors.js";
import type { Logger } from "../log/logger.js";
import {
  type BlockStore,
  type FriendStore,
  GROUP_ROLE,
  type GroupMemberRecord,
  type GroupRecord,
  type GroupStore,
  type SentMessageEraser,
  type Uid,
} from "../storage/ports.js";

export type AccountCleanupSettings = Pick<
  Config,
  "ACCOUNT_DELETE_BATCH" | "GROUP_DISSOLVE_HISTORY" | "GROUP_MEMBERS_PAGE"
>;

/** What the chat nodes' half of a deletion needs: narrow slices of the ports, so a test can hand in its own. */
export interface AccountCleanupPorts {
  friends: Pick<FriendStore, "friends" | "unfriend" | "incoming" | "dropApplication">;
  groups: Pick<GroupStore, "groupsOf" | "members" | "transferOwnership" | "removeMember" | "dissolve">;
  eraser: SentMessageEraser;
  /** The blocks uid made (issue 17); without it there are none to remove. */
  blocks?: Pick<BlockStore, "blocked" | "unblock">;
  settings: AccountCleanupSettings;
  log: Logger;
}

/** What one cleanup did, for the log and tests. */
export interface AccountCleanupReport {
  friends: number;
  applications: number;
  /** Groups left; of the ones it owned, handed over and dissolved. */
  groupsLeft: number;
  groupsHandedOver: number;
  groupsDissolved: number;
  messagesErased: number;
  blocks: number;
}

/** Friends, applications, groups and blocks are read this many at a time. */
const PAGE = 500;

/**
 * The chat nodes' half of deleting an account (issue 17), run by their AccountDeletionWorker
 * (./account-deletion-worker.ts) for each request gate recorded (gate's half,
 * AccountDeletionRequest in ./request-deletion.ts, ended the sessions and deleted the profile):
 * with eraseMessages its messages are erased as a recall erases them, then it leaves every
 * friendship and group (a group it owns goes to its oldest admin, else its oldest member, or is
 * dissolved when it was alone), and its blocks and the applications waiting for it go. It
 * touches only the chat nodes' tables (src/storage/mysql/grants.ts).
 *
 * Idempotent and resumable: every step only removes what is still there, so a cleanup that
 * failed half-way (a database that did not answer) is finished by running it again, which
 * skips what the first run did; the worker keeps the request until a run succeeds. Messages
 * are erased before the groups are left: a group's messages are found through the user's
 * membership.
 */
export class DeletedAccountCleanup {
  constructor(private readonly ports: AccountCleanupPorts) {}

  async cleanUp(uid: Uid, options: { eraseMessages: boolean }): Promise<AccountCleanupReport> {
    const report: AccountCleanupReport = {
      friends: 0,
      applications: 0,
      groupsLeft: 0,
      groupsHandedOver: 0,
      groupsDissolved: 0,
      messagesErased: 0,
      blocks: 0,
    };
    if (options.eraseMessages) report.messagesErased = await this.eraseMessages(uid);
    await this.leaveFriends(uid, report);
    await this.leaveGroups(uid, report);
    report.blocks = await this.dropBlocks(uid);
    this.ports.log.info({ uid, ...report }, "deleted account cleaned up");
    return report;
  }

  /** Every conversation uid is in, page by page (ACCOUNT_DELETE_BATCH messages a transaction). */
  private async eraseMessages(uid: Uid): Promise<number> {
    const { eraser, settings } = this.ports;
    let erased = 0;
    for (const convId of await eraser.conversationsOf(uid)) {
      let after: string | null = "";
      while (after !== null) {
        const page: { erased: number; next: string | null } = await eraser.eraseSent(
          uid,
          convId,
          after,
          settings.ACCOUNT_DELETE_BATCH,
        );
        erased += page.erased;
        after = page.next;
      }
    }
    return erased;
  }

  /** Both rows of each friendship, and the applications waiting for uid's answer. */
  private async leaveFriends(uid: Uid, report: AccountCleanupReport): Promise<void> {
    const { friends } = this.ports;
    // Each page is read again from the start, the rows before it being gone; a page that
    // removes nothing (a row that cannot be removed) ends the loop instead of spinning.
    for (let progress = true; progress; ) {
      progress = false;
      for (const friend of await friends.friends(uid, PAGE)) {
        if (!(await friends.unfriend(uid, friend.uid))) continue;
        report.friends++;
        progress = true;
      }
    }
    for (let progress = true; progress; ) {
      progress = false;
      for (const application of await friends.incoming(uid, PAGE)) {
        if (!(await friends.dropApplication(application.fromUid, uid))) continue;
        report.applications++;
        progress = true;
      }
    }
    // Applications uid sent live on their recipients' shards, found by nobody's index: they
    // stay until answered (an accept then befriends a uid without a user, listed nameless).
  }

  private async leaveGroups(uid: Uid, report: AccountCleanupReport): Promise<void> {
    const { groups } = this.ports;
    let after = "0";
    for (;;) {
      const page = await groups.groupsOf(uid, after, PAGE);
      for (const group of page) await this.leaveGroup(uid, group, report);
      const last = page.at(-1);
      if (!last || page.length < PAGE) return;
      after = last.groupId;
    }
  }

  /**
   * The owner hands the group over first (to the oldest admin, else the oldest member; ties by
   * uid), then leaves as an admin; alone, it dissolves the group (GROUP_DISSOLVE_HISTORY).
   */
  private async leaveGroup(uid: Uid, group: GroupRecord, report: AccountCleanupReport): Promise<void> {
    const { groups, settings } = this.ports;
    if (group.owner === uid) {
      const heir = successorOf(await this.membersOf(group.groupId), uid);
      if (!heir) {
        await groups.dissolve(group.groupId, settings.GROUP_DISSOLVE_HISTORY === "remove");
        report.groupsDissolved++;
        return;
      }
      if (!(await groups.transferOwnership(group.groupId, uid, heir))) {
        // The heir left (or the owner changed) since the members were read: the next call retries.
        throw new AppError(ErrorCode.UNAVAILABLE, `group ${group.groupId} changed while its owner was deleted`);
      }
      report.groupsHandedOver++;
    }
    if (await groups.removeMember(group.groupId, uid)) report.groupsLeft++;
  }

  /** Every member (a group has at most GROUP_MAX_MEMBERS), GROUP_MEMBERS_PAGE at a time by uid. */
  private async membersOf(groupId: string): Promise<GroupMemberRecord[]> {
    const { groups, settings } = this.ports;
    const all: GroupMemberRecord[] = [];
    for (let after: Uid = "0"; ; ) {
      const page = await groups.members(groupId, after, settings.GROUP_MEMBERS_PAGE);
      all.push(...page);
      const last = page.at(-1);
      if (!last || page.length < settings.GROUP_MEMBERS_PAGE) return all;
      after = last.uid;
    }
  }

  private async dropBlocks(uid: Uid): Promise<number> {
    const blocks = this.ports.blocks;
    if (!blocks) return 0;
    let dropped = 0;
    for (let progress = true; progress; ) {
      progress = false;
      for (const blocked of await blocks.blocked(uid, PAGE)) {
        if (!(await blocks.unblock(uid, blocked.uid))) continue;
        dropped++;
        progress = true;
      }
    }
    return dropped;
  }
}

/** Who gets a group its owner leaves: the oldest admin, else the oldest member (ties by uid); null when alone. */
export function successorOf(members: GroupMemberRecord[], owner: Uid): Uid | null {
  const others = members.filter((m) => m.uid !== owner);
  const byAge = (a: GroupMemberRecord, b: GroupMemberRecord) =>
    a.joinedAt - b.joinedAt || (BigInt(a.uid) < BigInt(b.uid) ? -1 : 1);
  const admins = others.filter((m) => m.role === GROUP_ROLE.admin).sort(byAge);
  return (admins[0] ?? others.sort(byAge)[0])?.uid ?? null;
}
