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
}

const DAY_SECONDS = 86_400;

/**
 * The abuse limits of chat requests. Messages per second, per connection (counted here: a
 * connection lives on one node) and per user (counted in the shared limiter: a user's sends
 * may reach several nodes during a reconnect); friend applications per user and day. A refused
 * request is answered RATE_LIMITED; the connection stays up.
 */
export class ChatLimits {
  private readonly windows = new WeakMap<Session, Window>();

  constructor(
    private readonly limiter: RateLimiter,
    private readonly settings: ChatLimitSettings,
    private readonly metrics: Metrics,
  ) {}

  /** One message posted on session. */
  async message(session: Session, now = Date.now()): Promise<void> {
    const { messagesPerConnection: perConnection, messagesPerUser: perUser } = this.settings;
    let window = this.windows.get(session);
    if (!window || now - window.startedAtMs >= 1000) {
      window = { startedAtMs: now, count: 0 };
      this.windows.set(session, window);
    }
    window.count += 1;
    if (window.count > perConnection) this.refuse("connection", `over ${perConnection} messages/s on this connection`);
    if (session.uid === undefined) return;
    // Redis down (a failover): the per-connection limit above still holds, so sending goes on
    // rather than every message failing for a limit.
    const user = await this.limiter
      .hit(`chat:send:${session.uid}`, perUser, 1)
      .catch(() => ({ allowed: true, retryAfterSeconds: 0 }));
    if (!user.allowed) this.refuse("user", `over ${perUser} messages/s for this user`);
  }

  /** One friend application by uid. */
  async friendApply(uid: string): Promise<void> {
    const max = this.settings.friendApplicationsPerDay;
    const day = await this.limiter.hit(`chat:friend-apply:${uid}`, max, DAY_SECONDS);
    if (!day.allowed) {
      this.refuse("friend_apply", `over ${max} friend applications a day; retry in ${day.retryAfterSeconds} s`);
    }
  }

  private refuse(limit: string, message: string): never {
    this.metrics.rateLimited.inc({ limit: `chat_${limit}` });
    throw new AppError(ErrorCode.RATE_LIMITED, message);
  }
}
