import type { ChatClient } from "@shardchat/sdk";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import {
  BadFieldValueError,
  decodeEnvelope,
  encodeEnvelope,
  encodeFrame,
  envelopeFromJson,
  envelopeToJson,
  FrameDecoder,
} from "../packages/protocol/src/frame.js";
import { type ChatMessage, DeviceKind, type Envelope, MessageKind } from "../packages/protocol/src/wire.js";
import { AppError, ErrorCode } from "../src/errors.js";
import { convIdForPair, type Uid } from "../src/ids/identifiers.js";
import { type MemoryNode, startMemoryNode } from "./helpers/memory-node.js";
import { openRawTcp, pollUntil } from "./helpers/raw-tcp.js";

/**
 * Property-based tests (fast-check) of what reaches a chat node from the wire: the frame codec
 * alone, then random and mutated frames against a live node. A failing run prints its seed;
 * `fc.assert(..., { seed })` replays it.
 */

const validSend: Envelope = {
  reqId: 7,
  body: {
    $case: "sendReq",
    value: { toUid: "1234567890123456789", clientMsgId: "c-1", kind: MessageKind.TEXT, text: "hello" },
  },
};

/** A valid frame's bytes with some of them replaced: the near misses a broken client sends. */
const mutatedBinary = fc
  .array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 })
  .map((edits) => {
    const bytes = Uint8Array.from(encodeEnvelope(validSend));
    for (const [at, value] of edits) bytes[at % bytes.length] = value;
    return bytes;
  });

/** A valid JSON frame with one field's value replaced by any JSON value. */
const mutatedJson = fc
  .tuple(fc.constantFrom("reqId", "toUid", "clientMsgId", "kind", "text"), fc.jsonValue())
  .map(([field, value]) => {
    const frame = JSON.parse(envelopeToJson(validSend)) as { reqId: unknown; sendReq: Record<string, unknown> };
    if (field === "reqId") frame.reqId = value;
    else frame.sendReq[field] = value;
    return JSON.stringify(frame);
  });

const REFUSALS = new Set([ErrorCode.MALFORMED_FRAME, ErrorCode.INVALID_ARGUMENT]);

describe("fuzzing the frame codec", () => {
  it("decodes any bytes to an envelope or refuses them with MALFORMED_FRAME, nothing else", () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), mutatedBinary), (bytes) => {
        try {
          expect(decodeEnvelope(bytes)).toBeTypeOf("object");
        } catch (err) {
          expect(err).toBeInstanceOf(AppError);
          expect((err as AppError).code).toBe(ErrorCode.MALFORMED_FRAME);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it("parses any text to an envelope whose every value fits its field, or refuses it with a code", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 200 }), fc.json(), mutatedJson), (text) => {
        let envelope: Envelope;
        try {
          envelope = envelopeFromJson(text);
        } catch (err) {
          expect(err).toBeInstanceOf(AppError);
          expect(REFUSALS).toContain((err as AppError).code);
          if (err instanceof BadFieldValueError) expect(err.code).toBe(ErrorCode.INVALID_ARGUMENT);
          return;
        }
        // What got through holds only values its fields can take: it encodes.
        expect(encodeEnvelope(envelope).length).toBeGreaterThanOrEqual(0);
      }),
      { numRuns: 3000 },
    );
  });

  it("reassembles frames however the stream is cut, and refuses a length over the limit before buffering it", () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ maxLength: 50 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }),
        (texts, cuts) => {
          const envelopes: Envelope[] = texts.map((text, i) => ({
            reqId: i + 1,
            body: { $case: "sendReq", value: { toUid: "2", clientMsgId: `c${i}`, kind: MessageKind.TEXT, text } },
          }));
          const stream = Buffer.concat(envelopes.map(encodeFrame));
          const decoder = new FrameDecoder(1024 * 1024);
          const got: Envelope[] = [];
          let at = 0;
          for (let i = 0; at < stream.length; i++) {
            const size = cuts[i % cuts.length] as number;
            for (const body of decoder.push(stream.subarray(at, at + size))) got.push(decodeEnvelope(body));
            at += size;
          }
          expect(got).toEqual(envelopes);
        },
      ),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.integer({ min: 1025, max: 0xffffffff }), (length) => {
        const header = Buffer.alloc(4);
        header.writeUInt32BE(length, 0);
        expect(() => new FrameDecoder(1024).push(header)).toThrow(
          expect.objectContaining({ code: ErrorCode.FRAME_TOO_LARGE }),
        );
      }),
      { numRuns: 200 },
    );
  });
});

/** A raw TCP connection to a chat node, and a wait for a reply to reqId (any reply, without one) or the close. */
async function rawTcp(port: number) {
  const raw = await openRawTcp(port);
  const settle = (reqId?: number) =>
    pollUntil(
      () =>
        raw.isClosed() || (reqId === undefined ? raw.received.length > 0 : raw.received.some((e) => e.reqId === reqId)),
    );
  return { ...raw, settle };
}

/** Requests that change nothing stored: a random frame that happens to be one may be answered. */
const READ_ONLY = new Set([
  "heartbeatReq",
  "syncReq",
  "historyReq",
  "groupMembersReq",
  "groupListReq",
  "searchUsersReq",
  "friendListReq",
  "friendApplicationsReq",
  "conversationListReq",
]);

describe("fuzzing a live chat node", () => {
  let memory: MemoryNode;
  let alice: { uid: Uid; token: string; client: ChatClient };
  let bob: { uid: Uid; token: string; client: ChatClient };
  let stored: ChatMessage[];

  const history = () => alice.client.history({ convId: convIdForPair(alice.uid, bob.uid), limit: 100 });

  beforeAll(async () => {
    memory = await startMemoryNode();
    alice = await memory.user("alice");
    bob = await memory.user("bob");
    for (const text of ["one", "two", "three"]) await alice.client.sendText(bob.uid, text);
    stored = await history();
    expect(stored).toHaveLength(3);
  });
  afterAll(() => memory?.close());

  it("answers random and mutated frames before login only with errors, never serving one", async () => {
    const port = memory.node.info.tcpPort;
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.uint8Array({ maxLength: 200 }), mutatedBinary), async (body) => {
        const raw = await rawTcp(port);
        const frame = Buffer.alloc(4 + body.length);
        frame.writeUInt32BE(body.length, 0);
        frame.set(body, 4);
        raw.socket.write(frame);
        await raw.settle();
        raw.socket.destroy();
        // Every frame is answered (an error), or the connection is closed; never served.
        expect(raw.received.length > 0 || raw.isClosed()).toBe(true);
        expect(raw.received.every((e) => e.body?.$case === "error")).toBe(true);
      }),
      { numRuns: 150 },
    );
    expect(await history()).toEqual(stored);
  });

  /** A raw TCP session logged in as bob's phone (each one replaces the last). */
  async function loggedIn() {
    const raw = await rawTcp(memory.node.info.tcpPort);
    raw.socket.write(
      encodeFrame({
        reqId: 1,
        body: { $case: "loginReq", value: { uid: bob.uid, token: bob.token, device: DeviceKind.MOBILE } },
      }),
    );
    await raw.settle(1);
    expect(raw.received.shift()?.body?.$case).toBe("loginResp");
    return raw;
  }

  it("answers random and mutated frames of a logged-in session with errors (bar read-only requests), keeps every stored message, and stays up", async () => {
    let served = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.uint8Array({ maxLength: 200 }), mutatedBinary), async (body) => {
        let envelope: Envelope | undefined;
        try {
          envelope = decodeEnvelope(body);
        } catch {
          // Not an envelope: the node must refuse it; checked below.
        }
        // A random frame that is a writing request would be served: not this test's business.
        fc.pre(envelope === undefined || envelope.body === undefined || READ_ONLY.has(envelope.body.$case));
        const raw = await loggedIn();
        // Followed by a heartbeat: once its reply is in, so is any answer to the fuzz frame
        // (one session's replies leave in order of arrival only per lane, so wait for both).
        const frame = Buffer.alloc(4 + body.length);
        frame.writeUInt32BE(body.length, 0);
        frame.set(body, 4);
        raw.socket.write(
          Buffer.concat([
            frame,
            encodeFrame({ reqId: 99, body: { $case: "heartbeatReq", value: { clientTimeMs: "1" } } }),
          ]),
        );
        await raw.settle(99);
        raw.socket.destroy();
        const fuzzReplies = raw.received.filter((e) => e.reqId !== 99 || e.body?.$case === "error");
        if (raw.received.some((e) => e.reqId === 99 && e.body?.$case === "heartbeatResp")) served += 1;
        else expect(raw.isClosed()).toBe(true); // refused as a broken stream: closed before the heartbeat
        if (!READ_ONLY.has(envelope?.body?.$case ?? "")) {
          for (const reply of fuzzReplies) expect(reply.body?.$case).toBe("error");
        }
      }),
      { numRuns: 200 },
    );
    // Both kinds of outcome were seen: frames refused as broken, and refused requests.
    expect(served).toBeGreaterThan(0);
    expect(await history()).toEqual(stored);
    // The node still serves: a new message goes through.
    const ack = await alice.client.sendText(bob.uid, "after the fuzz");
    expect(ack.seq).toBe(4);
  });

  it("answers mutated JSON text frames with an error (closing only on a broken envelope) and stores nothing", async () => {
    const before = await history();
    await fc.assert(
      fc.asyncProperty(mutatedJson, async (text) => {
        const socket = new WebSocket(memory.node.info.wsUrl);
        await new Promise((resolve, reject) => socket.once("open", resolve).once("error", reject));
        const received: Envelope[] = [];
        let closed = false;
        socket.on("message", (data: Buffer) => received.push(envelopeFromJson(data.toString("utf8"))));
        socket.on("close", () => {
          closed = true;
        });
        socket.send(
          envelopeToJson({ reqId: 1, body: { $case: "loginReq", value: { uid: bob.uid, token: bob.token } } }),
        );
        await pollUntil(() => received.length > 0);
        expect(received.shift()?.body?.$case).toBe("loginResp");
        socket.send(text);
        socket.send(envelopeToJson({ reqId: 99, body: { $case: "heartbeatReq", value: { clientTimeMs: "1" } } }));
        await pollUntil(() => received.some((e) => e.reqId === 99) || closed);
        socket.terminate();
        // The send names a uid no one has, or carries a value its field cannot hold: refused.
        for (const reply of received.filter((e) => e.reqId !== 99)) expect(reply.body?.$case, text).toBe("error");
        expect(received.some((e) => e.reqId === 99) || closed, text).toBe(true);
      }),
      { numRuns: 200 },
    );
    expect(await history()).toEqual(before);
  });
});
