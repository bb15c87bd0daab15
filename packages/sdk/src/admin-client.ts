import { AppError, ErrorCode } from "@shardchat/protocol";

/** A user as the Server API answers it. */
export interface AdminUser {
  uid: string;
  name: string;
  email: string;
  createdAt: number;
  /** Present while a ban lasts (untilMs 0: until unbanned). */
  banned?: { untilMs: number; reason: string };
}

export interface AdminNewUser {
  name: string;
  email: string;
  /** Absent: the user logs in only once a password is set (reset password with an emailed code). */
  password?: string;
}

/** A stored message as the Server API answers it (ids and times as decimal strings). */
export interface AdminMessage {
  convId: string;
  msgId: string;
  seq: number;
  sender: string;
  recipient?: string;
  clientMsgId?: string;
  kind: number;
  text: string;
  sentAtMs: string;
  custom?: { type: string; payloadJson: string };
  recalled?: boolean;
  editCount?: number;
  targetSeq?: number;
}

export interface AdminSent {
  convId: string;
  msgId: string;
  seq: number;
  sentAtMs: string;
  clientMsgId: string;
  duplicate: boolean;
}

export interface AdminGroup {
  groupId: string;
  convId: string;
  name: string;
  owner: string;
  memberCount: number;
  createdAtMs?: string;
  dissolved?: boolean;
}

export interface AdminConversation {
  convId: string;
  peerUid?: string;
  lastSeq: number;
  readSeq: number;
  unread: number;
  lastMessage?: AdminMessage;
}

export interface AdminReport {
  reportId: string;
  reporter: string;
  uid: string;
  convId?: string;
  seq?: number;
  snapshot?: string;
  reason: string;
  createdAt: number;
}

export interface AdminStats {
  nodes: { nodeId: string; sessions: number; messagesIn: number; messagesPerSecond: number }[];
  sessions: number;
  messagesPerSecond: number;
  shards: { instance: string; users: number; messages: number }[];
}

/** A bot (README "Bots"): a user the Server API drives, receiving its messages at webhookUrl. */
export interface AdminBot {
  uid: string;
  name: string;
  webhookUrl: string;
  createdAt: number;
  updatedAt: number;
}

export type AdminSend = {
  from: string;
  text?: string;
  custom?: { type: string; payloadJson: string };
  clientMsgId?: string;
} & ({ toUid: string; groupId?: undefined } | { groupId: string; toUid?: undefined });

/**
 * The Server API (gate's /admin/v1, issue 18), typed: one method per route, each answering its
 * result or throwing AppError with the code gate answered (API_KEY_INVALID, NOT_FOUND...), the
 * error's `details` attached when the answer has them.
 */
export class AdminClient {
  constructor(
    private readonly baseUrl: string,
    private readonly apiKey: string,
  ) {}

  createUser(user: AdminNewUser): Promise<{ uid: string }> {
    return this.call("POST", "/admin/v1/users", user);
  }

  importUsers(
    users: AdminNewUser[],
  ): Promise<{ created: number; results: { name: string; uid?: string; error: number }[] }> {
    return this.call("POST", "/admin/v1/users/import", { users });
  }

  async user(uid: string): Promise<AdminUser> {
    return (await this.call<{ user: AdminUser }>("GET", `/admin/v1/users/${enc(uid)}`)).user;
  }

  /** Changes the user's name (the one others see, and it logs in with); USER_EXISTS when taken. */
  async rename(uid: string, displayName: string): Promise<void> {
    await this.call("PATCH", `/admin/v1/users/${enc(uid)}`, { displayName });
  }

  /** `until`: a Date, ms since the epoch or an ISO time; absent: until unbanned. */
  ban(
    uid: string,
    options: { until?: Date | number | string; reason?: string } = {},
  ): Promise<{ untilMs: number; revoked: number }> {
    const until = options.until instanceof Date ? options.until.getTime() : options.until;
    return this.call("POST", `/admin/v1/users/${enc(uid)}/ban`, {
      ...(until !== undefined ? { until } : {}),
      ...(options.reason !== undefined ? { reason: options.reason } : {}),
    });
  }

  async unban(uid: string): Promise<boolean> {
    return (await this.call<{ unbanned: boolean }>("POST", `/admin/v1/users/${enc(uid)}/unban`)).unbanned;
  }

  async logout(uid: string): Promise<number> {
    return (await this.call<{ revoked: number }>("POST", `/admin/v1/users/${enc(uid)}/logout`)).revoked;
  }

  send(message: AdminSend): Promise<AdminSent> {
    return this.call("POST", "/admin/v1/messages", message);
  }

  recall(convId: string, seq: number): Promise<{ recalled: boolean; eventSeq?: number }> {
    return this.call("POST", "/admin/v1/messages/recall", { convId, seq });
  }

  async createGroup(input: { owner: string; name: string; members?: string[] }): Promise<AdminGroup> {
    return (await this.call<{ group: AdminGroup }>("POST", "/admin/v1/groups", input)).group;
  }

  async addMembers(groupId: string, uids: string[]): Promise<string[]> {
    return (await this.call<{ added: string[] }>("POST", `/admin/v1/groups/${enc(groupId)}/members`, { uids })).added;
  }

  async removeMember(groupId: string, uid: string): Promise<void> {
    await this.call("DELETE", `/admin/v1/groups/${enc(groupId)}/members/${enc(uid)}`);
  }

  async setRole(groupId: string, uid: string, role: "member" | "admin" | "owner"): Promise<void> {
    await this.call("PUT", `/admin/v1/groups/${enc(groupId)}/members/${enc(uid)}/role`, { role });
  }

  async dissolveGroup(groupId: string): Promise<void> {
    await this.call("DELETE", `/admin/v1/groups/${enc(groupId)}`);
  }

  history(
    convId: string,
    page: { afterSeq?: number; beforeSeq?: number; limit?: number } = {},
  ): Promise<{ messages: AdminMessage[]; firstSeq?: number }> {
    return this.call("GET", `/admin/v1/conversations/${enc(convId)}/messages${query(page)}`);
  }

  async conversations(uid: string, limit?: number): Promise<AdminConversation[]> {
    const path = `/admin/v1/users/${enc(uid)}/conversations${query({ limit })}`;
    return (await this.call<{ conversations: AdminConversation[] }>("GET", path)).conversations;
  }

  async reports(page: { beforeMs?: number; limit?: number } = {}): Promise<AdminReport[]> {
    return (await this.call<{ reports: AdminReport[] }>("GET", `/admin/v1/reports${query(page)}`)).reports;
  }

  stats(): Promise<AdminStats> {
    return this.call("GET", "/admin/v1/stats");
  }

  /** Makes a bot: a user that never logs in, sent bot.message events at webhookUrl; USER_EXISTS when the name is taken. */
  async createBot(input: { name: string; webhookUrl: string }): Promise<AdminBot> {
    return (await this.call<{ bot: AdminBot }>("POST", "/admin/v1/bots", input)).bot;
  }

  async bots(): Promise<AdminBot[]> {
    return (await this.call<{ bots: AdminBot[] }>("GET", "/admin/v1/bots")).bots;
  }

  async bot(uid: string): Promise<AdminBot> {
    return (await this.call<{ bot: AdminBot }>("GET", `/admin/v1/bots/${enc(uid)}`)).bot;
  }

  async updateBot(uid: string, changes: { webhookUrl: string }): Promise<AdminBot> {
    return (await this.call<{ bot: AdminBot }>("PATCH", `/admin/v1/bots/${enc(uid)}`, changes)).bot;
  }

  /** The bot receives nothing more; its account stays (it never logs in) with its history. */
  async deleteBot(uid: string): Promise<void> {
    await this.call("DELETE", `/admin/v1/bots/${enc(uid)}`);
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(new URL(path, this.baseUrl), {
        method,
        headers: {
          authorization: `Bearer ${this.apiKey}`,
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (err) {
      throw new AppError(ErrorCode.UNAVAILABLE, `gate ${this.baseUrl}: ${(err as Error).message}`);
    }
    const reply = (await res.json().catch(() => ({}))) as { error?: unknown; message?: string; details?: unknown };
    if (typeof reply.error !== "number")
      throw new AppError(ErrorCode.INTERNAL, `gate answered HTTP ${res.status} without a code`);
    if (reply.error !== ErrorCode.OK) {
      const err = new AppError(reply.error, reply.message) as AppError & { details?: unknown };
      if (reply.details !== undefined) err.details = reply.details;
      throw err;
    }
    return reply as T;
  }
}

function enc(part: string): string {
  return encodeURIComponent(part);
}

function query(values: Record<string, number | undefined>): string {
  const set = Object.entries(values).filter((e): e is [string, number] => e[1] !== undefined);
  return set.length === 0 ? "" : `?${new URLSearchParams(set.map(([k, v]) => [k, String(v)])).toString()}`;
}
