import { timingSafeEqual } from "node:crypto";
import { nanoid } from "nanoid";
import type { Config } from "../config/settings.js";
import { ErrorCode } from "../errors.js";
import type { ChatNodeInfo, StatusServiceService } from "../gen/shardchat/v1/status.js";
import type { Api } from "../grpc/api.js";
import { isUid } from "../ids/identifiers.js";
import type { Logger } from "../log/logger.js";
import { DEVICE_NAMES, type NodeRegistry, type TokenStore } from "../routing/ports.js";
import { ChatRing } from "../routing/ring.js";
import { secretDigest } from "../routing/secret-digest.js";

export type StatusApi = Api<typeof StatusServiceService>;

/**
 * Ends a user's sessions on one chat node (ChatNodeService.Kick over gRPC in a deployment):
 * those of one device kind, or ("") all of them. What a revocation does to open sessions.
 */
export type SessionKicker = (node: ChatNodeInfo, uid: string, device: string) => Promise<void>;

export interface StatusDeps {
  registry: NodeRegistry;
  tokens: TokenStore;
  /** Without one, a revoked token's open sessions live on until their next login (tests). */
  kick?: SessionKicker;
  config: Pick<Config, "NODE_TTL_MS" | "NODE_HEARTBEAT_INTERVAL_MS" | "RING_VNODES" | "TOKEN_TTL_SECONDS">;
  log: Logger;
  /** How stale the in-memory ring may get before it is rebuilt from the registry. */
  ringMaxAgeMs?: number;
}

/** Another status process may have changed membership; this bounds how long we miss it. */
export const DEFAULT_RING_MAX_AGE_MS = 500;

const TOKEN_LENGTH = 32;
const NODE_ID = /^[A-Za-z0-9_.-]{1,64}$/;

function invalidNode(node: ChatNodeInfo | undefined): string | null {
  if (!node) return "node missing";
  if (!NODE_ID.test(node.nodeId)) return "nodeId must be 1-64 of A-Z a-z 0-9 _ . -";
  if (!node.host || node.host.length > 255 || /\s/.test(node.host)) return "host missing or malformed";
  if (!Number.isInteger(node.tcpPort) || node.tcpPort < 1 || node.tcpPort > 65535) return "tcpPort out of range";
  if (!/^[^\s:]+:\d{1,5}$/.test(node.grpcAddr) && !/^\[[0-9A-Fa-f:.]+\]:\d{1,5}$/.test(node.grpcAddr)) {
    return "grpcAddr must be host:port";
  }
  return null;
}

function sameDigest(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  // Digests have one length; a stored value of another (a token kept in clear by an older
  // status) simply does not match.
  return x.length === y.length && timingSafeEqual(x, y);
}

interface RingView {
  builtAt: number;
  ring: ChatRing;
  nodes: Map<string, ChatNodeInfo>;
}

/**
 * The status service: chat-node membership, user → node assignment on a consistent-hash ring,
 * login tokens. All state lives in the registry and token store (Redis), so any number of status
 * processes can serve at once; each keeps only a short-lived cache of the ring.
 */
export function createStatusService(deps: StatusDeps): StatusApi {
  const { registry, tokens, config, log, kick } = deps;
  const ringMaxAgeMs = deps.ringMaxAgeMs ?? DEFAULT_RING_MAX_AGE_MS;
  let view: RingView | null = null;
  let refreshing: Promise<RingView> | null = null;
  let generation = 0;
  let lastRing: { membership: string; ring: ChatRing } | null = null;

  async function rebuild(): Promise<RingView> {
    const live = await registry.live();
    const nodes = new Map(live.map((n) => [n.nodeId, n]));
    const membership = live
      .map((n) => `${n.nodeId}:${n.weight || 1}`)
      .sort()
      .join(",");
    // Heartbeats change only connection counts; the ring is rebuilt only when members or weights change.
    if (lastRing?.membership !== membership) {
      const members = live.map((n) => ({ nodeId: n.nodeId, weight: n.weight || 1 }));
      lastRing = { membership, ring: new ChatRing(members, config.RING_VNODES) };
    }
    return { builtAt: Date.now(), ring: lastRing.ring, nodes };
  }

  function currentView(): Promise<RingView> {
    if (view && Date.now() - view.builtAt < ringMaxAgeMs) return Promise.resolve(view);
    // Concurrent lookups share one registry read.
    if (refreshing) return refreshing;
    const startedAt = generation;
    const read: Promise<RingView> = rebuild().then(
      (v) => {
        if (startedAt === generation) view = v;
        if (refreshing === read) refreshing = null;
        return v;
      },
      (err: unknown) => {
        if (refreshing === read) refreshing = null;
        throw err;
      },
    );
    refreshing = read;
    return read;
  }

  function invalidate(): void {
    // A registry read that started before this change must be neither trusted nor joined.
    generation++;
    view = null;
    refreshing = null;
  }

  return {
    async registerNode({ node }) {
      const problem = invalidNode(node);
      if (problem || !node) {
        log.warn({ nodeId: node?.nodeId, problem }, "registerNode rejected");
        return { error: ErrorCode.INVALID_ARGUMENT, heartbeatIntervalMs: 0, nodeTtlMs: 0 };
      }
      const info: ChatNodeInfo = { ...node, weight: node.weight || 1 };
      await registry.upsert(info, config.NODE_TTL_MS);
      invalidate();
      log.info({ node: info }, "chat node registered");
      return {
        error: ErrorCode.OK,
        heartbeatIntervalMs: config.NODE_HEARTBEAT_INTERVAL_MS,
        nodeTtlMs: config.NODE_TTL_MS,
      };
    },

    async heartbeat({ nodeId, connections }) {
      if (!NODE_ID.test(nodeId)) return { error: ErrorCode.INVALID_ARGUMENT };
      const known = (await registry.live()).find((n) => n.nodeId === nodeId);
      // Expired or never registered: the node must register again (it may have changed address).
      if (!known) return { error: ErrorCode.NOT_FOUND };
      await registry.upsert({ ...known, connections: Math.max(0, Math.trunc(connections) || 0) }, config.NODE_TTL_MS);
      return { error: ErrorCode.OK };
    },

    async leaveNode({ nodeId }) {
      if (!NODE_ID.test(nodeId)) return { error: ErrorCode.INVALID_ARGUMENT };
      await registry.remove(nodeId);
      invalidate();
      log.info({ nodeId }, "chat node left");
      return { error: ErrorCode.OK };
    },

    async listNodes() {
      const nodes = await registry.live();
      nodes.sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
      return { nodes };
    },

    async getChatNode({ uid }) {
      if (!isUid(uid)) return { error: ErrorCode.INVALID_ARGUMENT, node: undefined };
      const { ring, nodes } = await currentView();
      const owner = ring.ownerOf(uid);
      const node = owner === undefined ? undefined : nodes.get(owner);
      if (!node) return { error: ErrorCode.NO_CHAT_NODE, node: undefined };
      return { error: ErrorCode.OK, node };
    },

    async issueToken({ uid, device = "" }, meta) {
      if (!isUid(uid) || !isDeviceOrAny(device)) {
        return { error: ErrorCode.INVALID_ARGUMENT, token: "", expiresAtMs: "0" };
      }
      const token = nanoid(TOKEN_LENGTH);
      const expiresAtMs = Date.now() + config.TOKEN_TTL_SECONDS * 1000;
      await tokens.put(uid, { token: secretDigest(token), expiresAtMs, ...(device ? { device } : {}) });
      log.debug({ uid, requestId: meta?.requestId }, "token issued");
      return { error: ErrorCode.OK, token, expiresAtMs: String(expiresAtMs) };
    },

    async checkToken({ uid, token, device = "" }) {
      const refused = (error: ErrorCode) => ({ error, expiresAtMs: "0" });
      if (!isUid(uid) || !isDeviceOrAny(device)) return refused(ErrorCode.INVALID_ARGUMENT);
      if (!token) return refused(ErrorCode.TOKEN_INVALID);
      // Any of the user's kept tokens (one per device kind it may be logged in from).
      const digest = secretDigest(token);
      const stored = (await tokens.recent(uid)).find((t) => sameDigest(t.token, digest));
      if (!stored) return refused(ErrorCode.TOKEN_INVALID);
      // A token issued for one device kind opens sessions of that kind only.
      if (device && stored.device && stored.device !== device) return refused(ErrorCode.TOKEN_INVALID);
      if (Date.now() >= stored.expiresAtMs) return refused(ErrorCode.TOKEN_EXPIRED);
      return { error: ErrorCode.OK, expiresAtMs: String(stored.expiresAtMs) };
    },

    async revokeTokens({ uid, token, all }, meta) {
      if (!isUid(uid) || (!all && !token)) return { error: ErrorCode.INVALID_ARGUMENT, revoked: 0 };
      const removed = await tokens.revoke(uid, all ? undefined : secretDigest(token));
      if (!all && removed.length === 0) return { error: ErrorCode.TOKEN_INVALID, revoked: 0 };
      // The sessions those tokens opened are on the node the ring puts the user on (all of a
      // user's devices are). A token of no device kind may have opened any of them.
      const devices = all || removed.some((t) => !t.device) ? [""] : [...new Set(removed.map((t) => t.device ?? ""))];
      const { ring, nodes } = await currentView();
      const owner = ring.ownerOf(uid);
      const node = owner === undefined ? undefined : nodes.get(owner);
      if (node && kick) {
        for (const device of devices) {
          await kick(node, uid, device).catch((err: unknown) =>
            log.warn({ err, uid, nodeId: node.nodeId, requestId: meta?.requestId }, "cannot end a revoked session"),
          );
        }
      }
      log.info({ uid, revoked: removed.length, requestId: meta?.requestId }, "tokens revoked");
      return { error: ErrorCode.OK, revoked: removed.length };
    },
  };
}

/** "" (any device kind) or one of DEVICE_NAMES. */
function isDeviceOrAny(device: string): boolean {
  return device === "" || (DEVICE_NAMES as readonly string[]).includes(device);
}
