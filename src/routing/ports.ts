import { DEVICE_NAMES, type DeviceName } from "../../packages/protocol/src/ids.js";
import type { ChatNodeInfo } from "../gen/shardchat/v1/status.js";
import type { Uid } from "../storage/ports.js";

/** The live chat nodes (status writes, everyone reads). State outlives any status process. */
export interface NodeRegistry {
  /** Adds or refreshes a node; it leaves by itself ttlMs after its last upsert. */
  upsert(node: ChatNodeInfo, ttlMs: number): Promise<void>;
  remove(nodeId: string): Promise<void>;
  live(): Promise<ChatNodeInfo[]>;
}

export interface IssuedToken {
  /** As status stores it: the token's secretDigest, never the token itself. */
  token: string;
  expiresAtMs: number;
  /** The device kind it was issued for (a DeviceName); absent: any kind. */
  device?: string;
}

/**
 * Login tokens. A user keeps its newest few (TOKENS_PER_USER: one per device kind it may be
 * logged in from at once), so logging in on the web does not void the desktop's token, which
 * it needs to reconnect; an older one than those is dropped.
 */
export interface TokenStore {
  put(uid: Uid, token: IssuedToken): Promise<void>;
  /** The newest token. */
  get(uid: Uid): Promise<IssuedToken | null>;
  /** Every token kept for uid, newest first. */
  recent(uid: Uid): Promise<IssuedToken[]>;
  /** Forgets the token whose stored value is `token`, or (undefined) every token of uid; answers those removed. */
  revoke(uid: Uid, token: string | undefined): Promise<IssuedToken[]>;
}

export interface StoredCode {
  code: string;
  expiresAtMs: number;
}

/** What one guess at an email's code found (VerifyCodeStore.attempt). */
export type CodeAttempt = "ok" | "wrong" | "expired" | "none";

/** Verification codes by email (as verify stores them: each code's secretDigest). */
export interface VerifyCodeStore {
  /** A new code for email, with no guesses counted against it. */
  put(email: string, code: StoredCode): Promise<void>;
  get(email: string): Promise<StoredCode | null>;
  /**
   * One guess at email's code, in one atomic step, so concurrent guesses are each counted and
   * compared in turn: "none" without a code, "expired" past its expiry, "wrong" for a wrong
   * guess (it counts, and the one that makes `maxAttempts` removes the code), else "ok" (and,
   * with `consume`, the code is removed: a code is used once).
   */
  attempt(
    email: string,
    guess: string,
    options: { maxAttempts: number; consume: boolean; nowMs: number },
  ): Promise<CodeAttempt>;
  /** Removes the code only if it is still `code` (a code never mailed). Answers whether it did. */
  consume(email: string, code: string): Promise<boolean>;
}

/** Fixed-window counters for rate limits and cool-downs. */
export interface RateLimiter {
  /**
   * Counts `weight` hits on key (1 unless said); allowed while hits in the window <= limit. A
   * refused hit of weight over 1 is not kept, so a request too big for what is left of the
   * window spends none of it.
   */
  hit(
    key: string,
    limit: number,
    windowSeconds: number,
    weight?: number,
  ): Promise<{ allowed: boolean; retryAfterSeconds: number }>;
  /** Forgets key's window (a slot taken for work that then failed is given back). */
  reset(key: string): Promise<void>;
}

// The device kinds a user may be logged in from at once (one session each) are the client protocol's.
export { DEVICE_NAMES, type DeviceName };

/** Login tokens kept valid per user: one for each device kind it may hold a session on. */
export const TOKENS_PER_USER = DEVICE_NAMES.length;

export interface SessionRoute {
  nodeId: string;
  sessionId: string;
  /** The device kind this session holds; absent: "desktop". */
  device?: DeviceName;
}

/** Where each online user's sessions are: (uid, device kind) → chat node and session. */
export interface SessionRoutes {
  /** Binds uid's route of route.device to this session; answers the route of that device it replaced, if any. */
  bind(uid: Uid, route: SessionRoute): Promise<SessionRoute | null>;
  /**
   * Removes the route only if it still points at this session (of `device`; without it, of any
   * device kind).
   */
  unbind(uid: Uid, sessionId: string, device?: DeviceName): Promise<void>;
  /** One route per online uid (of any device kind): enough to know whether a user is online. */
  lookup(uids: Uid[]): Promise<Map<Uid, SessionRoute>>;
  /** Every device route of each online uid: where to deliver (its devices may sit on different nodes). */
  lookupAll(uids: Uid[]): Promise<Map<Uid, SessionRoute[]>>;
}

/**
 * Leases for background jobs that one process of the deployment should run at a time (the
 * retention purge, per database instance): a key held by one token until it expires or is
 * renewed. A holder that dies simply lets its lease run out.
 */
export interface JobLocks {
  /** Takes key for ttlMs unless someone holds it; answers the holder's token, or null. */
  acquire(key: string, ttlMs: number): Promise<string | null>;
  /** Extends the lease to ttlMs from now while token still holds it; whether it does. */
  renew(key: string, token: string, ttlMs: number): Promise<boolean>;
}
