import { describe, expect, it } from "vitest";
import type { Envelope } from "../packages/protocol/src/wire.js";
import type { OutboundFrame } from "../src/chat/outbound.js";
import { RingWatch } from "../src/chat/ring-watch.js";
import { BaseSession } from "../src/chat/session.js";
import { SessionRegistry } from "../src/chat/sessions.js";
import { ErrorCode } from "../src/errors.js";
import type { ChatNodeInfo } from "../src/gen/shardchat/v1/status.js";
import { uidOf } from "../src/ids/identifiers.js";
import { createLogger } from "../src/log/logger.js";
import { ChatRing } from "../src/routing/ring.js";

const VNODES = 40;
const log = createLogger("ring-watch-test", "fatal");

class RecordingSession extends BaseSession {
  readonly sent: Envelope[] = [];
  closeReason: ErrorCode | undefined;
  constructor() {
    super("tcp", "test");
  }
  protected write(frame: OutboundFrame): void {
    this.sent.push(frame.envelope);
  }
  protected shutdown(reason?: ErrorCode): void {
    this.closeReason = reason;
  }
}

function node(nodeId: string, port: number): ChatNodeInfo {
  return {
    nodeId,
    host: "127.0.0.1",
    tcpPort: port,
    wsUrl: `ws://127.0.0.1:${port + 100}/`,
    grpcAddr: `127.0.0.1:${port + 200}`,
    weight: 1,
    connections: 0,
  };
}

/** Node "a" with a logged-in session for each of 300 users, and a status whose node list the test sets. */
function setup() {
  let nodes: ChatNodeInfo[] | Error = [node("a", 9001), node("b", 9002), node("c", 9003)];
  const status = {
    listNodes: async () => {
      if (nodes instanceof Error) throw nodes;
      return { nodes };
    },
  };
  const sessions = new SessionRegistry();
  const byUid = new Map<string, RecordingSession>();
  const ring = new ChatRing(
    (nodes as ChatNodeInfo[]).map((n) => ({ nodeId: n.nodeId, weight: 1 })),
    VNODES,
  );
  // Only users the ring gives to "a" are on "a", as after their logins.
  for (let i = 0; byUid.size < 300; i++) {
    const uid = uidOf(900719925474099000n + BigInt(i));
    if (ring.ownerOf(uid) !== "a") continue;
    const session = new RecordingSession();
    sessions.add(session);
    sessions.bindUid(session, uid);
    byUid.set(uid, session);
  }
  const watch = new RingWatch(status, "a", VNODES, sessions, log);
  return {
    watch,
    byUid,
    setNodes: (next: ChatNodeInfo[] | Error) => {
      nodes = next;
    },
  };
}

describe("RingWatch", () => {
  it("leaves everyone in place while the ring is unchanged", async () => {
    const { watch, byUid } = setup();
    expect(await watch.check()).toEqual({ moved: 0, homeless: 0 });
    for (const s of byUid.values()) expect(s.closed).toBe(false);
  });

  it("moves exactly the users a joining node takes over, to that node", async () => {
    const { watch, byUid, setNodes } = setup();
    const four = [node("a", 9001), node("b", 9002), node("c", 9003), node("d", 9004)];
    setNodes(four);
    const after = new ChatRing(
      four.map((n) => ({ nodeId: n.nodeId, weight: 1 })),
      VNODES,
    );
    const expected = [...byUid.keys()].filter((uid) => after.ownerOf(uid) !== "a");
    // A consistent-hash ring: about a quarter of a's users go to d, and to d only.
    expect(expected.length).toBeGreaterThan(300 * 0.1);
    expect(expected.length).toBeLessThan(300 * 0.45);
    expect(expected.every((uid) => after.ownerOf(uid) === "d")).toBe(true);

    const result = await watch.check();
    expect(result).toEqual({ moved: expected.length, homeless: 0 });
    for (const [uid, session] of byUid) {
      const moved = expected.includes(uid);
      expect(session.closed, uid).toBe(moved);
      if (!moved) continue;
      expect(session.closeReason).toBe(ErrorCode.WRONG_NODE);
      const push = session.sent[0]?.body;
      expect(push?.$case).toBe("movePush");
      if (push?.$case !== "movePush") continue;
      expect(push.value.node).toEqual({ nodeId: "d", host: "127.0.0.1", tcpPort: 9004, wsUrl: "ws://127.0.0.1:9104/" });
    }
    // Nothing more moves on the next check.
    expect(await watch.check()).toEqual({ moved: 0, homeless: 0 });
  });

  it("moves every user off a draining node, each to its new owner", async () => {
    const { watch, byUid, setNodes } = setup();
    setNodes([node("b", 9002), node("c", 9003)]);
    watch.drain();
    const rest = new ChatRing(
      [
        { nodeId: "b", weight: 1 },
        { nodeId: "c", weight: 1 },
      ],
      VNODES,
    );
    expect(await watch.check()).toEqual({ moved: 300, homeless: 0 });
    for (const [uid, session] of byUid) {
      const push = session.sent[0]?.body;
      expect(push?.$case === "movePush" && push.value.node?.nodeId).toBe(rest.ownerOf(uid));
    }
  });

  it("moves nobody when status is down, or has forgotten this node (it registers again)", async () => {
    const { watch, byUid, setNodes } = setup();
    setNodes(new Error("status down"));
    expect(await watch.check()).toEqual({ moved: 0, homeless: 0 });
    setNodes([node("b", 9002), node("c", 9003)]);
    expect(await watch.check()).toEqual({ moved: 0, homeless: 0 });
    for (const s of byUid.values()) expect(s.closed).toBe(false);
  });

  it("counts users no node can take when the last node drains", async () => {
    const { watch, setNodes } = setup();
    setNodes([]);
    watch.drain();
    expect(await watch.check()).toEqual({ moved: 0, homeless: 300 });
  });
});
