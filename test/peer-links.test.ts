import type { ServerDuplexStream } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { PeerLinks } from "../src/chat/peer-links.js";
import { ErrorCode } from "../src/errors.js";
import {
  ChatNodeServiceService,
  type PushBatch,
  type PushBatchReply,
  type PushItem,
} from "../src/gen/shardchat/v1/chatnode.js";
import { addApi, type GrpcClient, grpcClient, startGrpcServer } from "../src/grpc/api.js";
import { createLogger } from "../src/log/logger.js";

const log = createLogger("peer-links-test", "fatal");
const TOKEN = "peer-links-test-token-0123456789";

/** A chat node's Push stream as a real gRPC server: answers each batch, or (stuck) never. */
async function peerServer(mode: { stuck: boolean }) {
  const batches: PushBatch[] = [];
  const unary = {
    deliver: async () => ({ error: ErrorCode.OK, offlineUids: [] }),
    kick: async () => ({ error: ErrorCode.OK, kicked: false }),
    notify: async () => ({ error: ErrorCode.OK, offlineUids: [] }),
    act: async () => ({ envelope: Buffer.alloc(0) }),
    stats: async () => ({ sessions: 0, messagesIn: "0", messagesPerSecond: 0, storage: [] }),
  };
  const server = await startGrpcServer(
    "127.0.0.1:0",
    (s) =>
      addApi(s, ChatNodeServiceService, unary, {
        push: (call: ServerDuplexStream<PushBatch, PushBatchReply>) => {
          call.on("data", (batch: PushBatch) => {
            batches.push(batch);
            if (mode.stuck) return;
            // "1..." uids are offline here, the rest moved.
            call.write({
              batchId: batch.batchId,
              outcomes: batch.items.map((item) => ({
                offlineUids: item.toUids.filter((u) => u.startsWith("1")),
                movedUids: item.toUids.filter((u) => !u.startsWith("1")),
              })),
            });
          });
          call.on("end", () => call.end());
          call.on("error", () => {});
        },
      }),
    { authToken: TOKEN },
  );
  return { server, batches };
}

function item(toUids: string[]): PushItem {
  return { toUids, envelope: Buffer.from([8, 1]), convId: "p:1:2", seq: 1 };
}

describe("peer links (one Push stream per peer node)", () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function linksTo(mode: { stuck: boolean }, replyTimeoutMs = 3000, maxPending = 1000) {
    const peer = await peerServer(mode);
    cleanup.push(() => peer.server.close());
    let client: GrpcClient<typeof ChatNodeServiceService> | undefined;
    let forgotten = 0;
    const directory = {
      client: async () => {
        client ??= grpcClient(ChatNodeServiceService, `127.0.0.1:${peer.server.port}`, { authToken: TOKEN });
        return client;
      },
      forget: () => {
        forgotten += 1;
        client?.close();
        client = undefined;
      },
    };
    const links = new PeerLinks(directory, { maxPending, replyTimeoutMs, log });
    cleanup.push(() => {
      links.close();
      client?.close();
    });
    return { links, peer, forgotten: () => forgotten };
  }

  it("writes the pushes of one tick as one batch and answers each item in order", async () => {
    const { links, peer } = await linksTo({ stuck: false });
    const answers = await Promise.all([
      links.push("n2", item(["11", "22"])),
      links.push("n2", item(["33"])),
      links.push("n2", item(["14"])),
    ]);
    expect(answers).toEqual([
      { offline: ["11"], moved: ["22"] },
      { offline: [], moved: ["33"] },
      { offline: ["14"], moved: [] },
    ]);
    expect(peer.batches.map((b) => b.items.length)).toEqual([3]);
    // The next tick's pushes go on the same stream, as the next batch.
    expect(await links.push("n2", item(["15"]))).toEqual({ offline: ["15"], moved: [] });
    expect(peer.batches.map((b) => b.batchId)).toEqual(["1", "2"]);
  });

  it("gives up on a peer that stops answering, then opens a new stream", async () => {
    const mode = { stuck: true };
    const { links, peer, forgotten } = await linksTo(mode, 300);
    const started = Date.now();
    expect(await links.push("n2", item(["11"]))).toBeUndefined();
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(forgotten()).toBe(1);
    mode.stuck = false;
    expect(await links.push("n2", item(["12"]))).toEqual({ offline: ["12"], moved: [] });
    expect(peer.batches).toHaveLength(2);
  });

  it("refuses at once what would exceed the pushes waiting for one peer", async () => {
    const { links } = await linksTo({ stuck: true }, 500, 2);
    const first = links.push("n2", item(["11"]));
    const second = links.push("n2", item(["12"]));
    expect(await links.push("n2", item(["13"]))).toBeUndefined();
    expect(await Promise.all([first, second])).toEqual([undefined, undefined]);
  });

  it("answers undefined for a peer the directory does not know", async () => {
    const links = new PeerLinks(
      { client: async () => undefined, forget: () => {} },
      {
        maxPending: 10,
        replyTimeoutMs: 1000,
        log,
      },
    );
    expect(await links.push("gone", item(["11"]))).toBeUndefined();
    links.close();
  });
});
