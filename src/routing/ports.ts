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
  token: string;
  expiresAtMs: number;
}

/** Login tokens, one per user: a new login replaces the older token. */
export interface TokenStore {
  put(uid: Uid, token: IssuedToken): Promise<void>;
  get(uid: Uid): Promise<IssuedToken | null>;
}

export interface StoredCode {
  code: string;
  expiresAtMs: number;
}

/** Verification codes by email. */
export interface VerifyCodeStore {
  put(email: string, code: StoredCode): Promise<void>;
  get(email: string): Promise<StoredCode | null>;
  /** Removes the code only if it is still `code` (a code is used once). Answers whether it did. */
  consume(email: string, code: string): Promise<boolean>;
}

/** Fixed-window counters for rate limits and cool-downs. */
export interface RateLimiter {
  /** Counts one hit on key; allowed while hits in the window <= limit. */
  hit(key: string, limit: number, windowSeconds: number): Promise<{ allowed: boolean; retryAfterSeconds: number }>;
}

export interface SessionRoute {
  nodeId: string;
  sessionId: string;
}

/** Where each online user's session is: uid → chat node. */
export interface SessionRoutes {
  /** Binds uid to this session; answers the route it replaced, if any. */
  bind(uid: Uid, route: SessionRoute): Promise<SessionRoute | null>;
  /** Removes the route only if it still points at this session. */
  unbind(uid: Uid, sessionId: string): Promise<void>;
  lookup(uids: Uid[]): Promise<Map<Uid, SessionRoute>>;
}
