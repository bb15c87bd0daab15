import type { ChatClient, GateClient, LoginAnswer, UploadedFile } from "@shardchat/sdk";
import {
  applyMessageEvent,
  type BlockedUser,
  type ChatMessage,
  type ConversationSettings,
  type Friend,
  type FriendApplication,
  GroupEventKind,
  type GroupInfo,
  type GroupInvitation,
  type GroupJoinApplication,
  type GroupMember,
  GroupRole,
  isMessageEvent,
  type MessageChangeResponse,
  MessageKind,
  openChat,
  type ReplyRef,
} from "@shardchat/sdk";
import { nanoid } from "nanoid";
import { AppError, ErrorCode, errorName } from "../../src/errors.js";
import { disablePush, enablePush, forgetPushDevice, type PushState, pushState, renewPush } from "./push.js";

/** What the connection is doing, as the header shows it. */
export type ConnState =
  | { kind: "connecting"; attempt: number }
  | { kind: "online"; nodeId: string }
  | { kind: "offline"; attempt: number; retryAt: number; reason: string }
  | { kind: "kicked" }
  | { kind: "expired" };

/** A message as the view shows it: stored ones have a seq; the user's own sends start at seq 0. */
export interface ViewMessage extends ChatMessage {
  status: "sending" | "sent" | "failed";
}

export interface Conversation {
  convId: string;
  /** The other user of a 1:1 conversation. */
  peerUid?: string;
  group?: GroupInfo;
  messages: ViewMessage[];
  unread: number;
  /** How far the peer has read (read receipts). */
  peerReadSeq: number;
  /** How far this user has read, as the server last said or this client marked. */
  readSeq: number;
  /** A message after readSeq mentions this user (or everyone). */
  mentioned: boolean;
  /**
   * The lowest and highest seq received, events included (events are applied to the messages
   * they change, never kept as messages): history pages continue below lowSeq, and reading
   * marks up to topSeq. 0 while nothing is stored.
   */
  lowSeq: number;
  topSeq: number;
  /** The oldest page was reached. */
  complete: boolean;
  lastActivity: number;
  /** This user's settings of the conversation, the same on all of its devices. */
  pinned: boolean;
  muted: boolean;
  /** Left out of the list until a message comes after it. */
  hidden: boolean;
  /** The first seq this user may read (history cleared for it, or expired): older ones are not gaps. */
  firstSeq: number;
  /** Why the last send here was refused (e.g. a block), shown above the composer. */
  notice: string;
}

/** What a message may add to its text when it is sent. */
export interface OutgoingExtras {
  /** The message replied to (of the same conversation). */
  reply?: ViewMessage;
  /** Group members mentioned, and @everyone (admins and the owner). */
  mentions?: { uids: string[]; all: boolean };
}

export interface PendingUpload {
  convId: string;
  name: string;
  sent: number;
  total: number;
}

const RETRY_BASE_MS = 500;
const RETRY_MAX_MS = 15_000;
const PAGE = 30;
/** How soon a sync that a storage failure cut short is tried again. */
const SYNC_RETRY_MS = 5_000;
/**
 * Bytes per tus PATCH: what a dropped connection can lose of an upload at most (the client
 * resumes from the last whole chunk gate has), at one request per chunk.
 */
const UPLOAD_CHUNK_BYTES = 2 * 1024 * 1024;

/** A file link is asked for again when it has less than this left. */
const FILE_LINK_MARGIN_MS = 60_000;
/** "Typing" is sent at most this often per conversation (the node drops more, TYPING_MIN_INTERVAL_MS). */
const TYPING_EVERY_MS = 2_000;
/** A typing push this soon after a message of its user is taken as the typing of that message. */
const TYPING_AFTER_MESSAGE_MS = 1_000;
/** How much of a message a reply quotes (the server's snippet is the same length). */
const SNIPPET_CHARS = 80;
export const LOGIN_KEY = "shardchat.login";
/** Groups this user saw dissolved (they leave the group list; their conversations stay). */
const DISSOLVED_KEY = "shardchat.dissolved";
/** A mute "until unmuted" ends past this (the server's is 9999-12-31). */
const FOREVER_MS = Date.UTC(9000, 0, 1);

/** The saved login (uid, token, its node) and the name typed at login, or null. */
export function savedLogin(): (LoginAnswer & { name: string }) | null {
  try {
    const saved = JSON.parse(localStorage.getItem(LOGIN_KEY) ?? "null") as (LoginAnswer & { name: string }) | null;
    if (!saved || typeof saved.uid !== "string" || typeof saved.token !== "string") return null;
    return saved.expiresAtMs > Date.now() ? saved : null;
  } catch {
    return null;
  }
}

export function saveLogin(login: LoginAnswer & { name: string }): void {
  localStorage.setItem(LOGIN_KEY, JSON.stringify(login));
}

export function forgetLogin(): void {
  localStorage.removeItem(LOGIN_KEY);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The peer of "p:<a>:<b>" for uid, or undefined for other conversations. */
export function peerOf(convId: string, uid: string): string | undefined {
  const m = /^p:(\d+):(\d+)$/.exec(convId);
  if (!m) return undefined;
  return m[1] === uid ? m[2] : m[1];
}

export function directConvId(a: string, b: string): string {
  const [x, y] = [BigInt(a), BigInt(b)];
  return x <= y ? `p:${x}:${y}` : `p:${y}:${x}`;
}

/** What a reply quotes of a message: its text, else its file's name, else its custom type. */
export function snippetOf(m: ChatMessage): string {
  if (m.recalled) return "";
  const chars = [...(m.text || m.file?.name || m.custom?.type || "")];
  return chars.length > SNIPPET_CHARS ? `${chars.slice(0, SNIPPET_CHARS).join("")}…` : chars.join("");
}

/** "until 14:05" today, "until 3 May, 14:05" later, "until an admin unmutes you" for a mute with no end. */
export function untilText(ms: number): string {
  if (ms >= FOREVER_MS) return "until an admin unmutes you";
  const d = new Date(ms);
  const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  if (d.toDateString() === new Date().toDateString()) return `until ${time}`;
  return `until ${d.toLocaleDateString([], { day: "numeric", month: "short" })}, ${time}`;
}

/** Whether a message mentions uid (by uid or @everyone). */
export function mentions(m: ChatMessage, uid: string): boolean {
  return !!m.mentions && (m.mentions.all || m.mentions.uids.includes(uid));
}

/**
 * One logged-in user in the browser: keeps a chat session open (reconnecting with exponential
 * backoff, resyncing what was missed), the conversations seen so far, and the user's friends
 * and groups. Views subscribe and re-render on every change.
 */
export class Session {
  state: ConnState = { kind: "connecting", attempt: 0 };
  readonly conversations = new Map<string, Conversation>();
  readonly names = new Map<string, string>();
  friends: Friend[] = [];
  applications: FriendApplication[] = [];
  groups: GroupInfo[] = [];
  /** Open invitations into groups, newest first: the user joins by accepting. */
  invitations: GroupInvitation[] = [];
  uploads: PendingUpload[] = [];
  /** Who is typing where: convId → uid → when it expires (ms). */
  readonly typing = new Map<string, Map<string, number>>();
  /** Members of the groups whose conversation was opened, by group id (for @-completion and roles). */
  readonly groupMembers = new Map<string, GroupMember[]>();
  /** The users this user blocked, the most recent first. */
  blocked: BlockedUser[] = [];
  /** Open requests to join the groups this user runs, by group id, newest first. */
  readonly joinRequests = new Map<string, GroupJoinApplication[]>();
  /** The group list was read once (before that a group conversation may not know its group yet). */
  groupsLoaded = false;
  /** Set when the server does not offer a feature (an older node): its screen is hidden. */
  readonly unsupported = new Set<"friends" | "groups" | "conversations" | "safety">();
  notice = "";
  version = 0;

  #client: ChatClient | undefined;
  readonly #fileLinks = new Map<string, { url: string; expiresAtMs: number }>();
  #stopped = false;
  #listeners = new Set<() => void>();
  #connecting = false;
  readonly #typingSent = new Map<string, number>();
  readonly #typingTimers = new Map<string, ReturnType<typeof setTimeout>>();
  /** When each user's last message arrived, per conversation ("convId uid"). */
  readonly #lastFrom = new Map<string, number>();
  /** Groups this user asked to join (a MEMBERS_ADDED naming it then says it was admitted). */
  readonly #asked = new Set<string>();
  /** The account is being deleted: its sessions end, and are not reopened. */
  #deleting = false;

  constructor(
    private readonly gate: GateClient,
    private login: LoginAnswer & { name: string },
    private readonly onLoggedOut: (why: "kicked" | "expired" | "logout" | "deleted") => void,
  ) {
    this.names.set(login.uid, login.name);
  }

  get uid(): string {
    return this.login.uid;
  }

  get auth() {
    return { uid: this.login.uid, token: this.login.token };
  }

  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  private changed(): void {
    this.version++;
    for (const l of this.#listeners) l();
  }

  start(): void {
    void this.connectLoop();
    void renewPush(this.gate, this.auth).catch(() => {});
  }

  /** Push notifications in this browser (web/src/push.ts): whether they can be, and are, on. */
  pushState(): Promise<PushState> {
    return pushState(this.gate);
  }

  /** Turns them on (asks the browser's permission: call from a click) or off. */
  setPush(on: boolean): Promise<PushState> {
    return on ? enablePush(this.gate, this.auth) : disablePush(this.gate, this.auth);
  }

  async logout(): Promise<void> {
    this.#stopped = true;
    forgetLogin();
    this.onLoggedOut("logout");
    // While the token still works: this browser stops getting this user's notifications.
    await forgetPushDevice(this.gate, this.auth);
    // The token is revoked at gate, so a copy of it (another tab, a stolen one) opens nothing.
    await this.gate.logout(this.auth).catch(() => {});
    await this.#client?.close().catch(() => {});
  }

  /** Connects until it works: backoff 0.5 s, 1 s, 2 s… up to 15 s, with jitter. */
  private async connectLoop(): Promise<void> {
    if (this.#connecting) return;
    this.#connecting = true;
    try {
      for (let attempt = 0; !this.#stopped; attempt++) {
        this.state = { kind: "connecting", attempt };
        this.changed();
        try {
          if (attempt > 0) {
            // The node may have gone away: gate names the one that owns this user now.
            const node = await this.gate.node(this.auth);
            this.login = { ...this.login, ...node };
            saveLogin(this.login);
          }
          const client = await openChat(this.login, "ws");
          if (this.#stopped) {
            await client.close();
            return;
          }
          this.attach(client);
          this.state = { kind: "online", nodeId: this.login.nodeId };
          this.changed();
          await this.resync();
          return;
        } catch (err) {
          if (
            err instanceof AppError &&
            (err.code === ErrorCode.TOKEN_INVALID || err.code === ErrorCode.TOKEN_EXPIRED)
          ) {
            this.expire();
            return;
          }
          const delay = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** attempt) * (0.75 + Math.random() / 2);
          const reason = err instanceof AppError ? errorName(err.code) : (err as Error).message;
          this.state = { kind: "offline", attempt: attempt + 1, retryAt: Date.now() + delay, reason };
          this.changed();
          await sleep(delay);
        }
      }
    } finally {
      this.#connecting = false;
    }
  }

  /** Tries to connect now instead of waiting for the next backoff step. */
  retryNow(): void {
    if (this.state.kind === "offline") {
      this.state = { kind: "connecting", attempt: this.state.attempt };
      this.changed();
    }
    void this.connectLoop();
  }

  private expire(): void {
    this.#stopped = true;
    forgetLogin();
    this.state = { kind: "expired" };
    this.changed();
    this.onLoggedOut("expired");
  }

  private attach(client: ChatClient): void {
    this.#client = client;
    let kicked = false;
    client.on("message", (m) => this.addMessage(m, true));
    client.on("kicked", (k) => {
      if (k.reason === ErrorCode.KICKED) kicked = true;
    });
    client.on("readReceipt", (r) => {
      const conv = this.conversations.get(r.convId);
      if (!conv) return;
      if (r.reader !== this.uid) conv.peerReadSeq = Math.max(conv.peerReadSeq, r.seq);
      else {
        // Read on another device of this user.
        conv.readSeq = Math.max(conv.readSeq, r.seq);
        conv.unread = 0;
        conv.mentioned = false;
      }
      this.changed();
    });
    client.on("friendApplication", (a) => {
      this.applications = [...this.applications.filter((x) => x.from?.uid !== a.from?.uid), a];
      if (a.from) this.names.set(a.from.uid, a.from.name);
      this.changed();
    });
    client.on("friendReply", () => void this.loadFriends());
    client.on("friendRemoved", () => void this.loadFriends());
    client.on("groupEvent", (e) => {
      const info = e.group;
      const groupId = info?.groupId;
      if (info && e.kind === GroupEventKind.DISSOLVED) this.markDissolved(info);
      else if (info) this.applyGroup(info);
      if (groupId && e.kind === GroupEventKind.MEMBER_MUTED) {
        // At once, before the member list is read again: the composer of a muted member closes.
        const members = this.groupMembers.get(groupId);
        if (members) {
          const until = e.untilMs && e.untilMs !== "0" ? e.untilMs : undefined;
          this.groupMembers.set(
            groupId,
            members.map((m) => (e.uids.includes(m.uid) ? { ...m, mutedUntilMs: until } : m)),
          );
        }
      }
      if (
        groupId &&
        e.kind === GroupEventKind.MEMBERS_ADDED &&
        e.uids.includes(this.uid) &&
        this.#asked.delete(groupId)
      ) {
        this.notice = `You joined ${info?.name ?? "the group"}`;
      }
      this.changed();
      if (e.kind === GroupEventKind.DISSOLVED) return;
      void this.loadGroups();
      if (groupId && this.groupMembers.has(groupId)) void this.loadMembers(groupId);
    });
    client.on("groupJoinRequest", (a) => {
      const uid = a.user?.uid;
      if (!uid) return;
      if (a.user) this.names.set(uid, a.user.name);
      const open = (this.joinRequests.get(a.groupId) ?? []).filter((r) => r.user?.uid !== uid);
      this.joinRequests.set(a.groupId, [a, ...open]);
      const group = this.groups.find((g) => g.groupId === a.groupId);
      this.notice = `${a.user?.name ?? `user ${uid}`} asks to join ${group?.name ?? `group ${a.groupId}`}`;
      this.changed();
    });
    client.on("conversationSettings", (p) => {
      const conv = this.conversations.get(p.convId);
      if (!conv) return;
      if (p.settings) this.applyPushedSettings(conv, p.settings);
      if (p.clearedSeq > 0) this.applyClear(conv, p.clearedSeq);
      this.changed();
    });
    client.on("typing", (t) => this.showTyping(t.convId, t.uid, t.expiresInMs));
    client.on("deletedForMe", (d) => this.hideMessages(d.convId, d.seqs));
    client.on("groupInvitation", (i) => {
      const groupId = i.group?.groupId;
      this.invitations = [i, ...this.invitations.filter((x) => x.group?.groupId !== groupId)];
      if (i.inviter) this.names.set(i.inviter.uid, i.inviter.name);
      this.changed();
    });
    // Part of the storage was down mid-sync: what came is shown; the rest is fetched again soon.
    client.on("syncIncomplete", () => this.syncLater(client));
    client.on("close", () => {
      if (this.#client !== client) return;
      this.#client = undefined;
      if (this.#stopped || this.#deleting) return;
      if (kicked) {
        this.#stopped = true;
        forgetLogin();
        this.state = { kind: "kicked" };
        this.changed();
        this.onLoggedOut("kicked");
        return;
      }
      void this.connectLoop();
    });
  }

  /** After every (re)connect: what arrived while away, then the lists, then unsent messages again. */
  private async resync(): Promise<void> {
    const client = this.#client;
    if (!client) return;
    for (const m of await client.syncAll()) this.addMessage(m, true);
    await Promise.all([this.loadConversations(), this.loadFriends(), this.loadGroups(), this.loadBlocked()]);
    for (const conv of this.conversations.values()) {
      for (const m of conv.messages) if (m.status === "sending") void this.resend(conv, m);
    }
    this.changed();
  }

  /** Syncs again in SYNC_RETRY_MS if client is still this session's; a failure tries later again. */
  private syncLater(client: ChatClient): void {
    setTimeout(async () => {
      if (this.#client !== client) return;
      try {
        for (const m of await client.syncAll()) this.addMessage(m, true);
        this.changed();
      } catch {
        this.syncLater(client);
      }
    }, SYNC_RETRY_MS);
  }

  private async optional<T>(
    feature: "friends" | "groups" | "conversations" | "safety",
    work: () => Promise<T>,
  ): Promise<T | undefined> {
    try {
      return await work();
    } catch (err) {
      if (err instanceof AppError && err.code === ErrorCode.UNKNOWN_MESSAGE_TYPE) {
        this.unsupported.add(feature);
        this.changed();
      }
      return undefined;
    }
  }

  private async loadConversations(): Promise<void> {
    const client = this.#client;
    if (!client) return;
    const list = await this.optional("conversations", () => client.conversations(100));
    for (const summary of list ?? []) {
      const conv = this.conversation(summary.convId);
      conv.unread = summary.unread;
      conv.readSeq = summary.readSeq;
      conv.mentioned = summary.mentioned;
      conv.peerReadSeq = Math.max(conv.peerReadSeq, summary.peerReadSeq);
      // Listed means shown: a hidden conversation is listed again once a message comes after it.
      this.applySettings(conv, { pinned: false, muted: false, ...summary.settings, hidden: false });
      if (summary.lastMessage) this.addMessage(summary.lastMessage, false);
      if (summary.firstSeq && summary.firstSeq > 1) this.applyClear(conv, summary.firstSeq - 1, summary.lastSeq);
    }
    await this.resolveNames([...this.conversations.values()].flatMap((c) => (c.peerUid ? [c.peerUid] : [])));
  }

  async loadFriends(): Promise<void> {
    const client = this.#client;
    if (!client) return;
    const [friends, applications] = await Promise.all([
      this.optional("friends", () => client.friends()),
      this.optional("friends", () => client.friendApplications()),
    ]);
    if (friends) this.friends = friends;
    if (applications) this.applications = applications;
    for (const f of this.friends) if (f.user) this.names.set(f.user.uid, f.user.name);
    for (const a of this.applications) if (a.from) this.names.set(a.from.uid, a.from.name);
    this.changed();
  }

  async loadGroups(): Promise<void> {
    const client = this.#client;
    if (!client) return;
    const [groups, invitations] = await Promise.all([
      this.optional("groups", () => client.listGroups()),
      this.optional("groups", () => client.groupInvitations()),
    ]);
    if (invitations) this.invitations = invitations.invitations;
    if (!groups) return;
    this.groups = groups;
    this.groupsLoaded = true;
    for (const g of groups) {
      const conv = this.conversation(g.convId);
      conv.group = g;
    }
    this.changed();
  }

  /** A group as a push or a reply says it is now: its place in the list and its conversation. */
  private applyGroup(info: GroupInfo): void {
    this.groups = this.groups.map((g) => (g.groupId === info.groupId ? info : g));
    const conv = this.conversations.get(info.convId);
    if (conv) conv.group = info;
  }

  /** The groups this user saw dissolved, kept across reloads (the group list no longer has them). */
  private dissolvedGroups(): GroupInfo[] {
    try {
      const all = JSON.parse(localStorage.getItem(DISSOLVED_KEY) ?? "{}") as Record<string, GroupInfo[]>;
      return Array.isArray(all[this.uid]) ? (all[this.uid] ?? []) : [];
    } catch {
      return [];
    }
  }

  /** A dissolved group leaves the list; its conversation stays, readable, without a composer. */
  private markDissolved(info: GroupInfo): void {
    const gone: GroupInfo = { ...info, dissolved: true };
    this.groups = this.groups.filter((g) => g.groupId !== gone.groupId);
    this.conversation(gone.convId).group = gone;
    this.joinRequests.delete(gone.groupId);
    try {
      const all = JSON.parse(localStorage.getItem(DISSOLVED_KEY) ?? "{}") as Record<string, GroupInfo[]>;
      const mine = this.dissolvedGroups().filter((g) => g.groupId !== gone.groupId);
      all[this.uid] = [...mine, gone].slice(-50);
      localStorage.setItem(DISSOLVED_KEY, JSON.stringify(all));
    } catch {
      // Only the title after a reload is lost.
    }
  }

  /** The users this user blocked; quietly nothing on a node without blocking. */
  async loadBlocked(): Promise<void> {
    const client = this.#client;
    if (!client) return;
    const list = await this.optional("safety", () => client.blockList());
    if (!list) return;
    this.blocked = list;
    for (const b of list) if (b.user) this.names.set(b.user.uid, b.user.name);
    this.changed();
  }

  /** Names for uids not seen yet (search by exact uid), best effort. */
  private async resolveNames(uids: string[]): Promise<void> {
    const client = this.#client;
    if (!client || this.unsupported.has("friends")) return;
    const unknown = [...new Set(uids)].filter((u) => !this.names.has(u));
    await Promise.all(
      unknown.map(async (uid) => {
        const found = await this.optional("friends", () => client.searchUsers(uid, 1));
        const user = found?.find((u) => u.uid === uid);
        if (user) this.names.set(uid, user.name);
      }),
    );
    if (unknown.length > 0) this.changed();
  }

  nameOf(uid: string): string {
    return this.names.get(uid) ?? `user ${uid}`;
  }

  titleOf(conv: Conversation): string {
    if (conv.group) return conv.group.name;
    if (conv.peerUid) return this.nameOf(conv.peerUid);
    const groupId = /^g:(\d+)$/.exec(conv.convId)?.[1];
    return groupId ? `group ${groupId}` : conv.convId;
  }

  conversation(convId: string): Conversation {
    let conv = this.conversations.get(convId);
    if (!conv) {
      conv = {
        convId,
        peerUid: peerOf(convId, this.uid),
        group: this.groups.find((g) => g.convId === convId) ?? this.dissolvedGroups().find((g) => g.convId === convId),
        messages: [],
        unread: 0,
        peerReadSeq: 0,
        readSeq: 0,
        mentioned: false,
        lowSeq: 0,
        topSeq: 0,
        complete: false,
        lastActivity: 0,
        pinned: false,
        muted: false,
        hidden: false,
        firstSeq: 1,
        notice: "",
      };
      this.conversations.set(convId, conv);
    }
    return conv;
  }

  /** The 1:1 conversation with uid, created locally until its first message. */
  openDirect(uid: string, name?: string): string {
    if (name) this.names.set(uid, name);
    const conv = this.conversation(directConvId(this.uid, uid));
    this.changed();
    void this.resolveNames([uid]);
    return conv.convId;
  }

  /**
   * Adds a stored message once (by seq), replacing the local copy of one of our own sends. An
   * event (recall, edit, reaction) is applied to the message it changes instead, and never
   * kept as a message of its own nor counted as unread here.
   */
  private addMessage(m: ChatMessage, fresh: boolean): void {
    const conv = this.conversation(m.convId);
    // Cleared for this user (or expired): never shown again.
    if (m.seq > 0 && m.seq < conv.firstSeq) return;
    // A hidden conversation comes back with the next message.
    if (fresh && m.seq > 0) conv.hidden = false;
    if (m.seq > 0) {
      conv.lowSeq = conv.lowSeq === 0 ? m.seq : Math.min(conv.lowSeq, m.seq);
      conv.topSeq = Math.max(conv.topSeq, m.seq);
      // The node counts one's own messages (and changes) as read.
      if (m.sender === this.uid) conv.readSeq = Math.max(conv.readSeq, m.seq);
    }
    // Names to show: the sender, and whoever wrote a quoted or forwarded message.
    const people = [m.sender, m.reply?.sender, m.forwarded?.sender].filter(
      (uid): uid is string => !!uid && uid !== "0" && !this.names.has(uid),
    );
    if (people.length > 0) void this.resolveNames(people);
    if (isMessageEvent(m)) {
      this.applyEvent(conv, m);
      this.changed();
      return;
    }
    const own = conv.messages.findIndex((x) => x.seq === 0 && x.clientMsgId === m.clientMsgId && x.sender === m.sender);
    if (own >= 0) conv.messages.splice(own, 1);
    if (!conv.messages.some((x) => x.seq === m.seq && x.seq > 0)) {
      conv.messages.push({ ...m, status: "sent" });
      conv.messages.sort(bySeq);
      if (fresh && m.sender !== this.uid && !m.deletedForMe) {
        conv.unread++;
        if (mentions(m, this.uid)) conv.mentioned = true;
      }
    }
    // Whoever sent a message has stopped typing it.
    if (fresh) {
      this.#lastFrom.set(`${m.convId} ${m.sender}`, Date.now());
      this.stopTyping(m.convId, m.sender);
    }
    conv.lastActivity = Math.max(conv.lastActivity, Number(m.sentAtMs));
    this.changed();
  }

  /**
   * An event replaces the copy of the message it changes (if this client holds it: history
   * brings the rest as it is now); quotes of a recalled or edited message follow it.
   */
  private applyEvent(conv: Conversation, event: ChatMessage): void {
    const targetSeq = event.targetSeq ?? event.target?.seq ?? 0;
    const at = conv.messages.findIndex((x) => x.seq === targetSeq && x.seq > 0);
    const held = at >= 0 ? conv.messages[at] : undefined;
    if (!held) return;
    const next = applyMessageEvent(held, event, this.uid);
    if (!next) return;
    conv.messages[at] = { ...next, status: held.status };
    for (const [i, m] of conv.messages.entries()) {
      if (m.reply?.seq !== targetSeq) continue;
      const reply: ReplyRef = { ...m.reply, snippet: snippetOf(next), recalled: next.recalled === true };
      conv.messages[i] = { ...m, reply };
    }
  }

  /** A change this user made: its event (absent when nothing changed) applied at once. */
  private applyChange(change: MessageChangeResponse): void {
    const event = change.event;
    if (event) this.addMessage(event.target ? event : { ...event, target: change.target }, false);
  }

  /** Messages this user deleted for itself (here or on another device): kept as empty places. */
  private hideMessages(convId: string, seqs: number[]): void {
    const conv = this.conversations.get(convId);
    if (!conv) return;
    const hidden = new Set(seqs);
    conv.messages = conv.messages.map((m) =>
      hidden.has(m.seq) && m.seq > 0
        ? { ...m, deletedForMe: true, text: "", file: undefined, custom: undefined, reply: undefined }
        : m,
    );
    this.changed();
  }

  private showTyping(convId: string, uid: string, expiresInMs: number): void {
    if (uid === this.uid) return;
    // The push of the typing that wrote a message may come after the message itself.
    const key = `${convId} ${uid}`;
    if (Date.now() - (this.#lastFrom.get(key) ?? 0) < TYPING_AFTER_MESSAGE_MS) return;
    let here = this.typing.get(convId);
    if (!here) {
      here = new Map();
      this.typing.set(convId, here);
    }
    here.set(uid, Date.now() + expiresInMs);
    clearTimeout(this.#typingTimers.get(key));
    this.#typingTimers.set(
      key,
      setTimeout(() => this.stopTyping(convId, uid), expiresInMs),
    );
    this.changed();
  }

  private stopTyping(convId: string, uid: string): void {
    const key = `${convId} ${uid}`;
    clearTimeout(this.#typingTimers.get(key));
    this.#typingTimers.delete(key);
    const here = this.typing.get(convId);
    if (!here?.delete(uid)) return;
    if (here.size === 0) this.typing.delete(convId);
    this.changed();
  }

  /** Who is typing in a conversation now (never this user). */
  typingIn(convId: string): string[] {
    const now = Date.now();
    return [...(this.typing.get(convId) ?? [])].filter(([, until]) => until > now).map(([uid]) => uid);
  }

  /** The user typed in a conversation's composer: the others see it (sent at most every 2 s). */
  notifyTyping(convId: string): void {
    const client = this.#client;
    const now = Date.now();
    if (!client || now - (this.#typingSent.get(convId) ?? 0) < TYPING_EVERY_MS) return;
    this.#typingSent.set(convId, now);
    client.typing(convId);
  }

  /** This user's role in a group conversation (undefined for a 1:1 one, or before its members are known). */
  roleIn(conv: Conversation): GroupRole | undefined {
    const group = conv.group;
    if (!group) return undefined;
    if (group.owner === this.uid) return GroupRole.OWNER;
    return this.groupMembers.get(group.groupId)?.find((m) => m.uid === this.uid)?.role;
  }

  /** Whether this user runs a group conversation (admin or owner): it recalls any message, mentions everyone. */
  runs(conv: Conversation): boolean {
    const role = this.roleIn(conv);
    return role === GroupRole.OWNER || role === GroupRole.ADMIN;
  }

  /** The newest page when a conversation opens with little in memory, then older pages on scroll. */
  async loadOlder(convId: string): Promise<void> {
    const client = this.#client;
    const conv = this.conversations.get(convId);
    if (!client || !conv || conv.complete) return;
    // The lowest seq received, events included: a page of events alone still moves it down.
    const oldest = conv.lowSeq;
    if (oldest !== 0 && oldest <= conv.firstSeq) {
      conv.complete = true;
      this.changed();
      return;
    }
    try {
      const { messages: page, firstSeq } = await client.historyPage({ convId, beforeSeq: oldest, limit: PAGE });
      if (firstSeq > conv.firstSeq) this.applyClear(conv, firstSeq - 1);
      for (const m of page) this.addMessage(m, false);
      if (page.length < PAGE || (conv.lowSeq !== 0 && conv.lowSeq <= conv.firstSeq)) conv.complete = true;
    } catch (err) {
      // A conversation with no message yet has no member rows: nothing to load.
      if (err instanceof AppError && err.code === ErrorCode.NOT_PARTICIPANT) conv.complete = true;
    }
    this.changed();
  }

  /** Marks everything received read, events included (the node counts them as unread too). */
  async markRead(convId: string): Promise<void> {
    const conv = this.conversations.get(convId);
    if (!conv) return;
    const hadUnread = conv.unread > 0 || conv.mentioned;
    conv.unread = 0;
    conv.mentioned = false;
    if (hadUnread) this.changed();
    const client = this.#client;
    const seq = conv.topSeq;
    if (!client || seq <= conv.readSeq || this.unsupported.has("conversations")) return;
    conv.readSeq = seq;
    await this.optional("conversations", () => client.markRead(convId, seq));
  }

  async sendText(convId: string, text: string, extras: OutgoingExtras = {}): Promise<void> {
    const conv = this.conversation(convId);
    const quoted = extras.reply;
    const m: ViewMessage = {
      convId,
      msgId: "0",
      seq: 0,
      sender: this.uid,
      recipient: conv.peerUid ?? "0",
      clientMsgId: nanoid(),
      kind: MessageKind.TEXT,
      text,
      sentAtMs: String(Date.now()),
      reply: quoted && {
        seq: quoted.seq,
        msgId: quoted.msgId,
        sender: quoted.sender,
        kind: quoted.kind,
        snippet: snippetOf(quoted),
        recalled: quoted.recalled === true,
      },
      mentions:
        conv.group && extras.mentions && (extras.mentions.all || extras.mentions.uids.length > 0)
          ? extras.mentions
          : undefined,
      status: "sending",
    };
    conv.messages.push(m);
    conv.lastActivity = Date.now();
    this.changed();
    await this.resend(conv, m);
  }

  /** Sends (again) with the same clientMsgId: the node stores it once whatever happens to the ack. */
  private async resend(conv: Conversation, m: ViewMessage): Promise<void> {
    const client = this.#client;
    if (!client) return;
    try {
      const group = conv.group?.groupId;
      const to = group ? { groupId: group } : { toUid: conv.peerUid ?? "" };
      const ack =
        m.kind === MessageKind.AUDIO
          ? await client.sendMessage(to, { kind: MessageKind.AUDIO, file: m.file }, m.clientMsgId)
          : group
            ? m.file
              ? await client.sendGroupFile(group, m.file, m.text, m.clientMsgId)
              : await client.sendMessage(
                  to,
                  { text: m.text, replyTo: m.reply?.seq, mentions: m.mentions },
                  m.clientMsgId,
                )
            : m.file
              ? await client.sendFile(conv.peerUid ?? "", m.file, m.text, m.clientMsgId)
              : await client.sendMessage(to, { text: m.text, replyTo: m.reply?.seq }, m.clientMsgId);
      conv.notice = "";
      conv.hidden = false;
      this.addMessage({ ...m, msgId: ack.msgId, seq: ack.seq, sentAtMs: ack.sentAtMs }, false);
    } catch (err) {
      // Lost with the connection: resync sends it again. Refused: the user sees why.
      if (err instanceof AppError && err.code === ErrorCode.UNAVAILABLE) return;
      m.status = "failed";
      const code = err instanceof AppError ? err.code : undefined;
      if (code === ErrorCode.BLOCKED) conv.notice = "You can't message this user";
      else if (code === ErrorCode.GROUP_MUTED) {
        conv.notice = "You can't post in this group now";
        const groupId = conv.group?.groupId;
        if (groupId) void this.loadMembers(groupId);
        void this.loadGroups();
      } else if (code === ErrorCode.GROUP_DISSOLVED && conv.group) {
        this.markDissolved(conv.group);
      } else this.notice = code !== undefined ? `not sent: ${errorName(code)}` : "not sent";
      this.changed();
    }
  }

  async sendFile(convId: string, file: File): Promise<void> {
    await this.sendUpload(convId, file, file.name, MessageKind.FILE);
  }

  /** A recorded voice message (MediaRecorder's clip): uploaded with its length, sent as AUDIO. */
  async sendVoice(convId: string, clip: Blob, durationMs: number): Promise<void> {
    const extension = clip.type.includes("ogg") ? "ogg" : clip.type.includes("mp4") ? "m4a" : "webm";
    await this.sendUpload(convId, clip, `voice-${Date.now()}.${extension}`, MessageKind.AUDIO, durationMs);
  }

  private async sendUpload(
    convId: string,
    file: Blob,
    name: string,
    kind: MessageKind,
    durationMs?: number,
  ): Promise<void> {
    const conv = this.conversation(convId);
    const upload: PendingUpload = { convId, name, sent: 0, total: file.size };
    this.uploads = [...this.uploads, upload];
    this.changed();
    let stored: UploadedFile;
    try {
      // Resumable (tus): a connection lost on the way resumes from what gate has, and files
      // larger than a one-shot upload allows (GATE_RESUMABLE_MAX_BYTES) go too.
      stored = await this.gate.uploadResumable(this.auth, convId, file, name, {
        contentType: file.type || "application/octet-stream",
        chunkSize: UPLOAD_CHUNK_BYTES,
        ...(durationMs !== undefined ? { durationMs } : {}),
        onProgress: (sent, total) => {
          upload.sent = sent;
          upload.total = total;
          this.changed();
        },
      });
    } catch (err) {
      this.notice = err instanceof AppError ? `upload refused: ${errorName(err.code)}` : "upload failed";
      return;
    } finally {
      this.uploads = this.uploads.filter((u) => u !== upload);
      this.changed();
    }
    const m: ViewMessage = {
      convId,
      msgId: "0",
      seq: 0,
      sender: this.uid,
      recipient: conv.peerUid ?? "0",
      clientMsgId: nanoid(),
      kind,
      text: "",
      sentAtMs: String(Date.now()),
      file: {
        id: stored.id,
        name: stored.name,
        size: String(stored.size),
        contentType: stored.contentType,
        ...(stored.media ? { media: stored.media } : {}),
      },
      status: "sending",
    };
    conv.messages.push(m);
    this.changed();
    await this.resend(conv, m);
  }

  /**
   * A signed link to a file or its thumbnail (the token never goes in a URL), kept while it has
   * a minute left; undefined when gate refuses one.
   */
  async fileUrl(id: string, variant: "original" | "thumbnail" = "original"): Promise<string | undefined> {
    const key = variant === "thumbnail" ? `${id}/thumbnail` : id;
    const kept = this.#fileLinks.get(key);
    if (kept && kept.expiresAtMs - Date.now() > FILE_LINK_MARGIN_MS) return kept.url;
    try {
      const link = await this.gate.fileLink(this.auth, id, variant);
      this.#fileLinks.set(key, link);
      return link.url;
    } catch {
      return undefined;
    }
  }

  clearNotice(): void {
    this.notice = "";
    this.changed();
  }

  /** Runs a friends/groups request, showing a refusal as the notice; answers whether it worked. */
  async act(work: (client: ChatClient) => Promise<unknown>): Promise<boolean> {
    const client = this.#client;
    if (!client) {
      this.notice = "offline: try again when connected";
      this.changed();
      return false;
    }
    try {
      await work(client);
      return true;
    } catch (err) {
      this.notice = err instanceof AppError ? errorName(err.code) : (err as Error).message;
      this.changed();
      return false;
    }
  }

  async search(query: string) {
    let found: { uid: string; name: string }[] = [];
    await this.act(async (c) => {
      found = await c.searchUsers(query, 20);
    });
    for (const u of found) this.names.set(u.uid, u.name);
    return found;
  }

  /** Joins (accept) or declines an invitation; answers the group joined. */
  async answerInvitation(groupId: string, accept: boolean): Promise<GroupInfo | undefined> {
    let joined: GroupInfo | undefined;
    const answered = await this.act(async (c) => {
      joined = await c.answerGroupInvitation(groupId, accept);
    });
    if (answered) this.invitations = this.invitations.filter((i) => i.group?.groupId !== groupId);
    await this.loadGroups();
    return joined;
  }

  async members(groupId: string): Promise<GroupMember[]> {
    let members: GroupMember[] | undefined;
    await this.act(async (c) => {
      members = await c.allGroupMembers(groupId);
    });
    if (!members) return [];
    this.groupMembers.set(groupId, members);
    await this.resolveNames(members.map((m) => m.uid));
    this.changed();
    return members;
  }

  /** The members of a group, kept for @-completion and roles; quietly nothing when it fails. */
  async loadMembers(groupId: string): Promise<void> {
    const client = this.#client;
    if (!client) return;
    const members = await this.optional("groups", () => client.allGroupMembers(groupId));
    if (!members) return;
    this.groupMembers.set(groupId, members);
    await this.resolveNames(members.map((m) => m.uid));
    this.changed();
  }

  /** Recalls a message for everyone (own ones within the window; any one for a group's admins). */
  async recall(m: ViewMessage): Promise<void> {
    await this.act(async (c) => this.applyChange(await c.recall(m.convId, m.seq)));
  }

  async edit(m: ViewMessage, text: string): Promise<boolean> {
    return this.act(async (c) => this.applyChange(await c.edit(m.convId, m.seq, text)));
  }

  /** Adds (or removes) this user's reaction. */
  async react(m: ViewMessage, emoji: string, add: boolean): Promise<void> {
    await this.act(async (c) => this.applyChange(await c.react(m.convId, m.seq, emoji, add)));
  }

  /** Hides a message from this user on all of its devices; the others keep it. */
  async deleteForMe(m: ViewMessage): Promise<void> {
    if (m.seq === 0) {
      // Not stored (a failed send): only this view has it.
      const conv = this.conversations.get(m.convId);
      if (conv) conv.messages = conv.messages.filter((x) => x !== m);
      this.changed();
      return;
    }
    if (await this.act((c) => c.deleteForMe(m.convId, [m.seq]))) this.hideMessages(m.convId, [m.seq]);
  }

  /** Copies a message into another conversation (a 1:1 one or a group) as this user's own. */
  async forward(m: ViewMessage, toConvId: string): Promise<boolean> {
    const conv = this.conversation(toConvId);
    const to = conv.group ? { groupId: conv.group.groupId } : conv.peerUid ? { toUid: conv.peerUid } : undefined;
    if (!to) return false;
    const clientMsgId = nanoid();
    return this.act(async (c) => {
      const ack = await c.forward({ convId: m.convId, seq: m.seq }, to, clientMsgId);
      this.addMessage(
        {
          convId: ack.convId,
          msgId: ack.msgId,
          seq: ack.seq,
          sender: this.uid,
          recipient: conv.peerUid ?? "0",
          clientMsgId,
          kind: m.kind,
          text: m.text,
          sentAtMs: ack.sentAtMs,
          file: m.file,
          custom: m.custom,
          forwarded: m.forwarded ?? { convId: m.convId, msgId: m.msgId, sender: m.sender, sentAtMs: m.sentAtMs },
        },
        false,
      );
    });
  }

  // ---- Safety and conversation management (issue 17).

  /** The conversations to list: hidden ones left out, pinned ones first, each part newest first. */
  listed(): Conversation[] {
    return [...this.conversations.values()]
      .filter((c) => !c.hidden)
      .sort((a, b) => Number(b.pinned) - Number(a.pinned) || b.lastActivity - a.lastActivity);
  }

  private applySettings(conv: Conversation, settings: ConversationSettings): void {
    conv.pinned = settings.pinned;
    conv.muted = settings.muted;
    conv.hidden = settings.hidden;
  }

  /**
   * Settings another device set. `hidden` stays set on the server after the next message brings
   * the conversation back, so a push that changes the pin or the mute says nothing about hiding:
   * only one that changes neither (a hide) hides it here.
   */
  private applyPushedSettings(conv: Conversation, settings: ConversationSettings): void {
    const other = settings.pinned !== conv.pinned || settings.muted !== conv.muted;
    conv.pinned = settings.pinned;
    conv.muted = settings.muted;
    if (!settings.hidden) conv.hidden = false;
    else if (!other) conv.hidden = true;
  }

  /**
   * History up to clearedSeq is gone for this user: the conversation starts after it. lastSeq is
   * the newest seq known to exist (the list says it before its messages are read).
   */
  private applyClear(conv: Conversation, clearedSeq: number, lastSeq = conv.topSeq): void {
    const first = clearedSeq + 1;
    if (first <= conv.firstSeq) return;
    conv.firstSeq = first;
    conv.messages = conv.messages.filter((m) => m.seq === 0 || m.seq >= first);
    // What is still held starts at first; nothing held: the next page is the newest one.
    if (conv.lowSeq !== 0 && conv.lowSeq < first) conv.lowSeq = conv.topSeq >= first ? first : 0;
    conv.readSeq = Math.max(conv.readSeq, clearedSeq);
    if (clearedSeq >= Math.max(lastSeq, conv.topSeq)) {
      // Cleared up to the newest: nothing is left to read or load.
      conv.unread = 0;
      conv.mentioned = false;
      conv.complete = true;
    } else if (conv.lowSeq === first) conv.complete = true;
  }

  /** Pins, mutes or hides a conversation for this user (on all of its devices). */
  async setConversation(convId: string, patch: Partial<ConversationSettings>): Promise<boolean> {
    const conv = this.conversation(convId);
    let settings: ConversationSettings | undefined;
    const done = await this.act(async (c) => {
      settings = await c.conversationSettings(convId, patch);
    });
    if (done) {
      // `hidden` answers true until changed again, though a message brought the conversation back.
      conv.pinned = settings?.pinned ?? patch.pinned ?? conv.pinned;
      conv.muted = settings?.muted ?? patch.muted ?? conv.muted;
      if (patch.hidden !== undefined) conv.hidden = patch.hidden;
      this.changed();
    }
    return done;
  }

  /** Clears a conversation's history for this user alone, up to the newest message. */
  async clearHistory(convId: string): Promise<boolean> {
    const conv = this.conversation(convId);
    let cleared = 0;
    const done = await this.act(async (c) => {
      cleared = await c.clearHistory(convId, 0);
    });
    if (done) {
      this.applyClear(conv, cleared);
      this.changed();
    }
    return done;
  }

  isBlocked(uid: string): boolean {
    return this.blocked.some((b) => b.user?.uid === uid);
  }

  /** Blocks a user: neither may message the other; a friendship between them ends. */
  async block(uid: string): Promise<boolean> {
    const done = await this.act((c) => c.block(uid));
    if (done) {
      this.notice = `You blocked ${this.nameOf(uid)}`;
      await Promise.all([this.loadBlocked(), this.loadFriends()]);
    }
    return done;
  }

  async unblock(uid: string): Promise<boolean> {
    const done = await this.act((c) => c.unblock(uid));
    if (done) {
      this.notice = `You unblocked ${this.nameOf(uid)}`;
      const conv = this.conversations.get(directConvId(this.uid, uid));
      if (conv) conv.notice = "";
      await this.loadBlocked();
    }
    return done;
  }

  /** Reports a user or a message to the operators, with a reason. */
  async report(target: { uid: string } | { convId: string; seq: number }, reason: string): Promise<boolean> {
    const done = await this.act((c) => c.report(target, reason));
    if (done) {
      this.notice = "Report sent: thank you";
      this.changed();
    }
    return done;
  }

  /** How long this user is muted in a group (ms since the epoch; 0: not muted). */
  mutedUntil(conv: Conversation): number {
    const group = conv.group;
    if (!group) return 0;
    const me = this.groupMembers.get(group.groupId)?.find((m) => m.uid === this.uid);
    const until = Number(me?.mutedUntilMs ?? 0);
    return until > Date.now() ? until : 0;
  }

  /** Why this user may not post in a conversation now, or undefined when it may. */
  postingBlock(conv: Conversation): string | undefined {
    const group = conv.group;
    if (!group) {
      return conv.convId.startsWith("g:") && this.groupsLoaded ? "You are not a member of this group" : undefined;
    }
    if (group.dissolved) return "This group was dissolved";
    const until = this.mutedUntil(conv);
    if (until > 0) return `You are muted ${untilText(until)}`;
    const role = this.roleIn(conv);
    if (group.mutedAll && role === GroupRole.MEMBER) return "Only admins can post now";
    return undefined;
  }

  /** Mutes a member for seconds, until unmuted ("forever"), or unmutes it (0). */
  async muteMember(groupId: string, uid: string, seconds: number | "forever"): Promise<boolean> {
    let until = 0;
    const done = await this.act(async (c) => {
      until = await c.muteGroupMember(groupId, uid, seconds);
    });
    if (done) {
      const members = this.groupMembers.get(groupId);
      if (members) {
        this.groupMembers.set(
          groupId,
          members.map((m) => (m.uid === uid ? { ...m, mutedUntilMs: until > 0 ? String(until) : undefined } : m)),
        );
      }
      this.changed();
    }
    return done;
  }

  /** Lets only admins and the owner post (true), or everyone again. */
  async muteAll(groupId: string, muted: boolean): Promise<boolean> {
    const done = await this.act((c) => c.muteGroup(groupId, muted));
    if (done) {
      const group = this.groups.find((g) => g.groupId === groupId);
      if (group) this.applyGroup({ ...group, mutedAll: muted || undefined });
      this.changed();
      void this.loadGroups();
    }
    return done;
  }

  /** Sets the group's announcement ("" removes it). */
  async announce(groupId: string, text: string): Promise<boolean> {
    let info: GroupInfo | undefined;
    const done = await this.act(async (c) => {
      info = await c.announceInGroup(groupId, text);
    });
    if (info) this.applyGroup(info);
    this.changed();
    return done;
  }

  /** New members join only with an admin's approval (true), or not. */
  async setJoinApproval(groupId: string, required: boolean): Promise<boolean> {
    const done = await this.act((c) => c.setGroupJoinApproval(groupId, required));
    if (done) {
      const group = this.groups.find((g) => g.groupId === groupId);
      if (group) this.applyGroup({ ...group, joinApproval: required || undefined });
      this.changed();
      void this.loadGroups();
    }
    return done;
  }

  /** The owner dissolves the group: nobody posts in it again. */
  async dissolve(groupId: string): Promise<boolean> {
    const group = this.groups.find((g) => g.groupId === groupId);
    const done = await this.act((c) => c.dissolveGroup(groupId));
    if (done && group) {
      this.markDissolved(group);
      this.notice = `${group.name} was dissolved`;
      this.changed();
    }
    return done;
  }

  /** Asks to join a group that requires approval; its admins are told. */
  async askToJoin(groupId: string, message: string): Promise<boolean> {
    const done = await this.act((c) => c.requestToJoinGroup(groupId, message));
    if (done) {
      this.#asked.add(groupId);
      this.notice = "Request sent: an admin of the group will answer it";
      this.changed();
    }
    return done;
  }

  /** The open join requests of a group this user runs. */
  async loadJoinRequests(groupId: string): Promise<void> {
    const client = this.#client;
    if (!client) return;
    const requests = await this.optional("safety", () => client.groupJoinRequests(groupId));
    if (!requests) return;
    this.joinRequests.set(groupId, requests);
    for (const r of requests) if (r.user) this.names.set(r.user.uid, r.user.name);
    this.changed();
  }

  /** Admits (the user joins) or declines a join request. */
  async answerJoin(groupId: string, uid: string, accept: boolean): Promise<boolean> {
    const done = await this.act((c) => c.answerGroupJoin(groupId, uid, accept));
    if (done) {
      this.joinRequests.set(
        groupId,
        (this.joinRequests.get(groupId) ?? []).filter((r) => r.user?.uid !== uid),
      );
      this.changed();
      if (accept) await Promise.all([this.loadMembers(groupId), this.loadGroups()]);
    }
    return done;
  }

  /**
   * Deletes this user's account (the password asked again), then leaves for the login screen;
   * answers why it was refused, or undefined once deleted.
   */
  async deleteAccount(password: string): Promise<string | undefined> {
    // Deleting ends this session (its token is revoked): that close is not a lost connection.
    this.#deleting = true;
    try {
      await this.gate.deleteAccount(this.auth, password);
    } catch (err) {
      this.#deleting = false;
      if (!this.#client && !this.#stopped) void this.connectLoop();
      if (err instanceof AppError) {
        if (err.code === ErrorCode.BAD_CREDENTIALS) return "Wrong password.";
        if (err.code === ErrorCode.ACCOUNT_LOCKED) return "Too many wrong passwords: try again later.";
        return errorName(err.code);
      }
      return (err as Error).message;
    }
    this.#stopped = true;
    forgetLogin();
    this.onLoggedOut("deleted");
    await this.#client?.close().catch(() => {});
    return undefined;
  }
}

function bySeq(a: ViewMessage, b: ViewMessage): number {
  // Unsent (seq 0) after everything stored, in the order they were typed.
  if (a.seq === 0 || b.seq === 0) return (a.seq === 0 ? 1 : 0) - (b.seq === 0 ? 1 : 0);
  return a.seq - b.seq;
}
