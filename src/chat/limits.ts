import { TokenBucket } from "limiter";
import { AppError, ErrorCode } from "../errors.js";
import type { Metrics } from "../metrics/metrics.js";
import type { RateLimiter } from "../routing/ports.js";
import type { Session } from "./session.js";

interface Window {
  startedAtMs: number;
  count: number;
}

export interface ChatLimitSettings {
  messagesPerConnection: number;
  messagesPerUser: number;
  friendApplicationsPerDay: number;
  groupCreatesPerDay: number;
  /** Invitees per day, over all groups. */
  groupInvitesPerDay: number;
  /** Reports of users and messages per user and day (REPORTS_PER_DAY). */
  reportsPerDay: number;
  /** Other requests per second and connection (not sends, which count above, nor acks). */
  requestsPerConnection: number;
  searchesPerConnectionPerMinute: number;
  /** Logins this node admits per second, and at once (the token bucket's rate and size). */
  loginsPerSecond: number;
  loginBurst: number;
  /** The shortest gap between two typing pushes of one session in one conversation (0: none). */
  typingMinIntervalMs: number;
}

const DAY_SECONDS = 86_400;

/**
 * The abuse limits of chat requests. Messages per second, per connection (counted here: a
 * connection lives on one node) and per user; friend applications per user and day. A refused
 * request is answered RATE_LIMITED; the connection stays up.
 *
 * The per-user count is kept here for users the ring puts on this node (all their devices
 * are here), so the hot path makes no Redis round trip; only a user whose sends reach a node
 * the ring does not put them on (while the ring moves) is counted in the shared limiter.
 */
export class ChatLimits {
  private readonly windows = new WeakMap<Session, Window>();
  private readonly requestWindows = new WeakMap<Session, Window>();
  private readonly searchWindows = new WeakMap<Session, Window>();
  private readonly userWindows = new Map<string, Window>();
  /** Per session, when each conversation last had a typing push from it. */
  private readonly typingAt = new WeakMap<Session, Map<string, number>>();
  private lastPruneMs = 0;
  private readonly logins: TokenBucket;

  constructor(
    private readonly limiter: RateLimiter,
    private readonly settings: ChatLimitSettings,
    private readonly metrics: Metrics,
    /** Whether the ring puts uid on this node. */
    private readonly isLocal: (uid: string) => boolean = () => false,
  ) {
    this.logins = new TokenBucket({
      bucketSize: settings.loginBurst,
      tokensPerInterval: settings.loginsPerSecond,
      interval: "second",
    });
    // The bucket starts empty; a node that just started (a node add) admits a burst at once.
    this.logins.content = settings.loginBurst;
  }

  /**
   * Whether this node admits one more login now. A reconnect storm (a failover, a node add)
   * is paced here, before the login costs status, Redis or MySQL anything.
   */
  admitLogin(): boolean {
    if (this.logins.tryRemoveTokens(1)) return true;
    this.metrics.rateLimited.inc({ limit: "chat_login" });
    return false;
  }

  /** One message posted on session. */
  async message(session: Session, now = Date.now()): Promise<void> {
    const { messagesPerConnection: perConnection, messagesPerUser: perUser } = this.settings;
    if (countIn(this.windows, session, now) > perConnection) {
      this.refuse("connection", `over ${perConnection} messages/s on this connection`);
    }
    if (session.uid === undefined) return;
    if (this.isLocal(session.uid)) {
      this.prune(now);
      if (countIn(this.userWindows, session.uid, now) > perUser)
        this.refuse("user", `over ${perUser} messages/s for this user`);
      return;
    }
    // Redis down (a failover): the per-connection limit above still holds, so sending goes on
    // rather than every message failing for a limit.
    const user = await this.limiter
      .hit(`chat:send:${session.uid}`, perUser, 1)
      .catch(() => ({ allowed: true, retryAfterSeconds: 0 }));
    if (!user.allowed) this.refuse("user", `over ${perUser} messages/s for this user`);
  }

  /**
   * One request on session that is neither a message send nor an ack (heartbeats, sync,
   * history, lists, searches...): each costs the node storage or Redis work, so a connection
   * gets a budget of them; a search, which asks every shard, a tighter one of its own.
   */
  request(session: Session, kind: string, now = Date.now()): void {
    const { requestsPerConnection: perSecond, searchesPerConnectionPerMinute: searches } = this.settings;
    if (countIn(this.requestWindows, session, now) > perSecond) {
      this.refuse("request", `over ${perSecond} requests/s on this connection`);
    }
    if (kind === "searchUsersReq" && countIn(this.searchWindows, session, now, 60_000) > searches) {
      this.refuse("search", `over ${searches} searches a minute on this connection`);
    }
  }

  /**
   * Whether a typing request of session in convId is pushed: not if the last one pushed was
   * less than typingMinIntervalMs ago. Not an error, since the indicator is showing anyway.
   */
  typing(session: Session, convId: string, now = Date.now()): boolean {
    let last = this.typingAt.get(session);
    if (!last) {
      last = new Map();
      this.typingAt.set(session, last);
    }
    const at = last.get(convId);
    if (at !== undefined && now - at < this.settings.typingMinIntervalMs) return false;
    // A session types in few conversations; forgetting them all past a bound keeps it so.
    if (last.size >= 64) last.clear();
    last.set(convId, now);
    return true;
  }

  /** One friend application by uid. */
  async friendApply(uid: string): Promise<void> {
    const max = this.settings.friendApplicationsPerDay;
    const day = await this.limiter.hit(`chat:friend-apply:${uid}`, max, DAY_SECONDS);
    if (!day.allowed) {
      this.refuse("friend_apply", `over ${max} friend applications a day; retry in ${day.retryAfterSeconds} s`);
    }
  }

  /** One group created by uid. */
  async groupCreate(uid: string): Promise<void> {
    const max = this.settings.groupCreatesPerDay;
    const day = await this.limiter.hit(`chat:group-create:${uid}`, max, DAY_SECONDS);
    if (!day.allowed) {
      this.refuse("group_create", `over ${max} groups created a day; retry in ${day.retryAfterSeconds} s`);
    }
  }

  /** `count` users invited by uid, counted together: refused whole when they do not all fit. */
  async groupInvites(uid: string, count: number): Promise<void> {
    if (count === 0) return;
    const max = this.settings.groupInvitesPerDay;
    const day = await this.limiter.hit(`chat:group-invite:${uid}`, max, DAY_SECONDS, count);
    if (!day.allowed) {
      this.refuse("group_invite", `over ${max} users invited a day; retry in ${day.retryAfterSeconds} s`);
    }
  }

  /** One report (of a user or a message) filed by uid. */
  async report(uid: string): Promise<void> {
    const max = this.settings.reportsPerDay;
    const day = await this.limiter.hit(`chat:report:${uid}`, max, DAY_SECONDS);
    if (!day.allowed) {
      this.refuse("report", `over ${max} reports a day; retry in ${day.retryAfterSeconds} s`);
    }
  }

  /** Forgets the windows of users who stopped sending, at most once a second. */
  private prune(now: number): void {
    if (now - this.lastPruneMs < 1000) return;
    this.lastPruneMs = now;
    for (const [uid, window] of this.userWindows) if (now - window.startedAtMs >= 1000) this.userWindows.delete(uid);
  }

  private refuse(limit: string, message: string): never {
    this.metrics.rateLimited.inc({ limit: `chat_${limit}` });
    throw new AppError(ErrorCode.RATE_LIMITED, message);
  }
}

/** One hit in key's window (one second unless said); answers the hits in it so far. */
function countIn<K>(
  windows: { get(k: K): Window | undefined; set(k: K, w: Window): unknown },
  key: K,
  now: number,
  windowMs = 1000,
): number {
  let window = windows.get(key);
  if (!window || now - window.startedAtMs >= windowMs) {
    window = { startedAtMs: now, count: 0 };
    windows.set(key, window);
  }
  window.count += 1;
  return window.count;
}
