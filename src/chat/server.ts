import type { Config } from "../config/settings.js";
import { ErrorCode, errorName } from "../errors.js";
import { ChatNodeServiceService } from "../gen/shardchat/v1/chatnode.js";
import type { ChatNodeInfo, StatusServiceService } from "../gen/shardchat/v1/status.js";
import { type Api, addApi, startGrpcServer } from "../grpc/api.js";
import type { IdGenerator } from "../ids/ports.js";
import type { Logger } from "../log/logger.js";
import type { SessionRoutes } from "../routing/ports.js";
import type { MessageStore, UserStore } from "../storage/ports.js";
import { ChatNode } from "./node.js";
import { createChatNodeService } from "./node-service.js";
import { PeerDirectory } from "./peers.js";
import { SessionRegistry } from "./sessions.js";
import { startTcpTransport, type TransportLimits } from "./transport/tcp.js";
import { startWsTransport } from "./transport/ws.js";

export interface ChatNodeDeps {
  config: Config;
  log: Logger;
  messages: MessageStore;
  users: UserStore;
  routes: SessionRoutes;
  status: Api<typeof StatusServiceService>;
  ids: IdGenerator;
}

export interface RunningChatNode {
  /** What the node registered with status (with the ports actually bound). */
  info: ChatNodeInfo;
  /** Live sessions on this node right now. */
  sessionCount(): number;
  close(): Promise<void>;
}

/**
 * Starts a chat node: TCP, WebSocket and node-to-node gRPC listeners (port 0 picks a free
 * one), then registers with status and heartbeats. Status being down does not stop the node:
 * it keeps serving its sessions and registers again once status answers.
 */
export async function startChatNode(deps: ChatNodeDeps): Promise<RunningChatNode> {
  const { config, status } = deps;
  const log = deps.log.child({ nodeId: config.CHAT_NODE_ID });
  const sessions = new SessionRegistry();
  const peers = new PeerDirectory(status, config.CHAT_NODE_ID, config.CHAT_PEER_REFRESH_MS, log);
  const node = new ChatNode({ ...deps, log, nodeId: config.CHAT_NODE_ID, sessions, peers });
  const limits: TransportLimits = {
    maxFrameBytes: config.CHAT_MAX_FRAME_BYTES,
    maxOutboundBytes: config.CHAT_MAX_OUTBOUND_BYTES,
    closeGraceMs: config.CHAT_CLOSE_GRACE_MS,
  };

  const grpc = await startGrpcServer(`${config.CHAT_HOST}:${config.CHAT_GRPC_PORT}`, (server) =>
    addApi(server, ChatNodeServiceService, createChatNodeService(sessions)),
  );
  const tcp = await startTcpTransport(config.CHAT_HOST, config.CHAT_TCP_PORT, node, limits, log);
  const ws = await startWsTransport(config.CHAT_HOST, config.CHAT_WS_PORT, node, limits, log);
  node.startSweeping();

  const host = config.CHAT_PUBLIC_HOST || config.CHAT_HOST;
  const info: ChatNodeInfo = {
    nodeId: config.CHAT_NODE_ID,
    host,
    tcpPort: tcp.port,
    wsUrl: `ws://${host}:${ws.port}/`,
    grpcAddr: `${config.CHAT_GRPC_PUBLIC_HOST || host}:${grpc.port}`,
    weight: config.CHAT_WEIGHT,
    connections: 0,
  };
  const membership = new StatusMembership(status, info, () => sessions.size, log);
  await membership.beat();
  const heartbeatTimer = setInterval(() => void membership.beat(), config.NODE_HEARTBEAT_INTERVAL_MS);
  heartbeatTimer.unref();
  log.info({ tcpPort: tcp.port, wsUrl: info.wsUrl, grpcAddr: info.grpcAddr }, "chat node started");

  let closing: Promise<void> | undefined;
  return {
    info,
    sessionCount: () => sessions.size,
    close: () => {
      closing ??= (async () => {
        clearInterval(heartbeatTimer);
        await membership.leave();
        // The listener stops accepting now but only finishes once its sockets are gone,
        // which node.close() sees to.
        const tcpClosed = tcp.close();
        await node.close();
        await Promise.all([tcpClosed, ws.close(), grpc.close()]);
        peers.close();
        log.info("chat node stopped");
      })();
      return closing;
    },
  };
}

/** Registration and heartbeats with status; a heartbeat answered NOT_FOUND registers again. */
class StatusMembership {
  private registered = false;
  private beating: Promise<void> | undefined;

  constructor(
    private readonly status: Api<typeof StatusServiceService>,
    private readonly info: ChatNodeInfo,
    private readonly connections: () => number,
    private readonly log: Logger,
  ) {}

  /** Never throws: a status outage only means trying again on the next beat. */
  beat(): Promise<void> {
    this.beating ??= this.beatOnce().finally(() => {
      this.beating = undefined;
    });
    return this.beating;
  }

  private async beatOnce(): Promise<void> {
    const connections = this.connections();
    try {
      if (this.registered) {
        const reply = await this.status.heartbeat({ nodeId: this.info.nodeId, connections });
        if (reply.error === ErrorCode.OK) return;
        if (reply.error !== ErrorCode.NOT_FOUND) {
          this.log.warn({ error: errorName(reply.error) }, "heartbeat refused");
          return;
        }
        this.log.warn("status forgot this node; registering again");
      }
      const reply = await this.status.registerNode({ node: { ...this.info, connections } });
      this.registered = reply.error === ErrorCode.OK;
      if (!this.registered) this.log.error({ error: errorName(reply.error) }, "registration refused");
    } catch (err) {
      this.log.warn({ err }, "status unreachable; serving on, will retry");
    }
  }

  async leave(): Promise<void> {
    await this.beating;
    if (!this.registered) return;
    try {
      await this.status.leaveNode({ nodeId: this.info.nodeId });
      this.registered = false;
    } catch (err) {
      this.log.warn({ err }, "cannot leave status; the node will expire from the ring");
    }
  }
}
