import { Envelope } from "../../packages/protocol/src/wire.js";
import { AppError, ErrorCode, okOrThrow } from "../errors.js";
import type { ChatNodeServiceService } from "../gen/shardchat/v1/chatnode.js";
import type { StatusServiceService } from "../gen/shardchat/v1/status.js";
import type { Api } from "../grpc/api.js";
import type { ShardSize, Uid } from "../storage/ports.js";

type Body = NonNullable<Envelope["body"]>;
/** A request or response of the chat protocol by its case ("sendReq", "sendResp"...). */
export type BodyOf<C extends Body["$case"]> = Extract<Body, { $case: C }>["value"];

/** A chat node's client, by node id (PeerDirectory: built from status's node list). */
export interface ChatNodeClients {
  get(nodeId: string): Promise<Api<typeof ChatNodeServiceService> | undefined>;
  forget(nodeId: string): void;
}

export interface NodeStats {
  nodeId: string;
  sessions: number;
  messagesIn: number;
  messagesPerSecond: number;
}

/**
 * How the Server API changes chat state: each request runs on the chat node the ring puts its
 * uid on (ChatNodeService.Act), through the handlers a client's request goes through, so
 * its pushes reach online users as a client's would.
 */
export class ChatNodeActions {
  constructor(
    private readonly status: Pick<Api<typeof StatusServiceService>, "getChatNode" | "listNodes">,
    private readonly nodes: ChatNodeClients,
  ) {}

  /**
   * Runs `request` as uid (privileged: the Server API's rights, see ActRequest) and answers the
   * reply of case `answer`; a refusal is thrown as the AppError the node answered.
   */
  async act<C extends Body["$case"]>(
    uid: Uid,
    request: Body,
    answer: C,
    { privileged = true, requestId }: { privileged?: boolean; requestId?: string } = {},
  ): Promise<BodyOf<C>> {
    const { node } = okOrThrow(await this.status.getChatNode({ uid }, { requestId }));
    if (!node) throw new AppError(ErrorCode.NO_CHAT_NODE);
    const api = await this.nodes.get(node.nodeId);
    if (!api) throw new AppError(ErrorCode.UNAVAILABLE, `chat node ${node.nodeId} cannot be reached`);
    const envelope = Buffer.from(Envelope.encode({ reqId: 1, body: request }).finish());
    let reply: Envelope;
    try {
      reply = Envelope.decode((await api.act({ uid, envelope, privileged }, { requestId })).envelope);
    } catch (err) {
      if (err instanceof AppError && err.code === ErrorCode.UNAVAILABLE) this.nodes.forget(node.nodeId);
      throw err;
    }
    const body = reply.body;
    if (body?.$case === "error") throw new AppError(body.value.code, body.value.message);
    if (body?.$case !== answer) throw new AppError(ErrorCode.INTERNAL, `the chat node answered ${body?.$case}`);
    return body.value as BodyOf<C>;
  }

  /**
   * Closes uid's sessions on every live node (a kickPush with `reason` first), not only on the
   * node the ring puts it on: a session opened before the ring moved may be elsewhere. Answers
   * how many nodes had one; a node that does not answer is skipped (its sessions end with their
   * token, which the caller revokes).
   */
  async kickEverywhere(uid: Uid, reason: ErrorCode): Promise<number> {
    const { nodes } = await this.status.listNodes({});
    const kicked = await Promise.all(
      nodes.map(async (node) => {
        const api = await this.nodes.get(node.nodeId);
        const reply = await api?.kick({ uid, sessionId: "", reason, device: "" }).catch(() => undefined);
        return reply?.kicked === true;
      }),
    );
    return kicked.filter(Boolean).length;
  }

  /**
   * Every live node's sessions and messages, as each counts them (a node that does not answer is
   * left out), and the rows per database instance as the first node that counted them says (the
   * chat nodes' database user reads messages; gate's does not).
   */
  async stats(): Promise<{ nodes: NodeStats[]; shards: ShardSize[] }> {
    const { nodes } = await this.status.listNodes({});
    const answers = await Promise.all(
      nodes.map(async (node) => {
        const api = await this.nodes.get(node.nodeId);
        return { nodeId: node.nodeId, stats: await api?.stats({}).catch(() => undefined) };
      }),
    );
    const answered = answers.flatMap(({ nodeId, stats }) => (stats ? [{ nodeId, stats }] : []));
    const counted = answered.find(({ stats }) => stats.storage.length > 0)?.stats.storage ?? [];
    return {
      nodes: answered.map(({ nodeId, stats }) => ({
        nodeId,
        sessions: stats.sessions,
        messagesIn: Number(stats.messagesIn),
        messagesPerSecond: stats.messagesPerSecond,
      })),
      shards: counted.map((s) => ({ instance: s.instance, users: Number(s.users), messages: Number(s.messages) })),
    };
  }
}
