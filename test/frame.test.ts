import { describe, expect, it } from "vitest";
import {
  BadFieldValueError,
  decodeEnvelope,
  encodeEnvelope,
  encodeFrame,
  envelopeFromJson,
  envelopeToJson,
  FrameDecoder,
  LENGTH_BYTES,
} from "../packages/protocol/src/frame.js";
import type { Envelope } from "../packages/protocol/src/wire.js";
import { AppError, ErrorCode } from "../src/errors.js";

const MAX = 1024;

function sendRequest(reqId: number, text: string): Envelope {
  return {
    reqId,
    body: { $case: "sendReq", value: { toUid: "18446744073709551615", clientMsgId: `c${reqId}`, kind: 1, text } },
  };
}

function codeOf(run: () => unknown): ErrorCode | "no error" | "not an AppError" {
  try {
    run();
    return "no error";
  } catch (err) {
    return err instanceof AppError ? err.code : "not an AppError";
  }
}

describe("FrameDecoder", () => {
  it("decodes a frame fed one byte at a time", () => {
    const envelope = sendRequest(1, "split into single bytes ✓");
    const frame = encodeFrame(envelope);
    const decoder = new FrameDecoder(MAX);
    const bodies: Buffer[] = [];
    for (let i = 0; i < frame.length; i++) {
      const got = decoder.push(frame.subarray(i, i + 1));
      if (i < frame.length - 1) expect(got).toEqual([]);
      bodies.push(...got);
    }
    expect(bodies).toHaveLength(1);
    expect(decodeEnvelope(bodies[0] as Buffer)).toEqual(envelope);
  });

  it("decodes several frames glued into one chunk, in order, keeping a partial tail", () => {
    const envelopes = [sendRequest(1, "one"), sendRequest(2, ""), sendRequest(3, "three")];
    const glued = Buffer.concat(envelopes.map(encodeFrame));
    const fourth = encodeFrame(sendRequest(4, "four"));
    const decoder = new FrameDecoder(MAX);
    const first = decoder.push(Buffer.concat([glued, fourth.subarray(0, 3)]));
    expect(first.map((body) => decodeEnvelope(body))).toEqual(envelopes);
    const rest = decoder.push(fourth.subarray(3));
    expect(rest.map((body) => decodeEnvelope(body))).toEqual([sendRequest(4, "four")]);
  });

  it("decodes an empty envelope (zero-length body)", () => {
    const decoder = new FrameDecoder(MAX);
    const [body] = decoder.push(encodeFrame({ reqId: 0, body: undefined }));
    expect(body?.length).toBe(0);
    expect(decodeEnvelope(body as Buffer)).toEqual({ reqId: 0 });
  });

  it("throws FRAME_TOO_LARGE from the length prefix alone, before the body arrives", () => {
    const head = Buffer.alloc(LENGTH_BYTES);
    head.writeUInt32BE(MAX + 1, 0);
    const decoder = new FrameDecoder(MAX);
    expect(codeOf(() => decoder.push(head))).toBe(ErrorCode.FRAME_TOO_LARGE);
  });

  it("accepts a frame of exactly the limit", () => {
    const body = Buffer.alloc(MAX);
    const frame = Buffer.alloc(LENGTH_BYTES);
    frame.writeUInt32BE(MAX, 0);
    expect(new FrameDecoder(MAX).push(Buffer.concat([frame, body]))).toHaveLength(1);
  });
});

describe("decodeEnvelope", () => {
  it("answers MALFORMED_FRAME for bytes that are not an Envelope", () => {
    for (const garbage of [[0xff, 0xff, 0xff], [0x07], [0x52, 0x10, 0x01, 0x02], [0x08]]) {
      expect(codeOf(() => decodeEnvelope(Uint8Array.from(garbage)))).toBe(ErrorCode.MALFORMED_FRAME);
    }
  });

  it("decodes an envelope with an unknown oneof field number with body undefined", () => {
    // req_id = 5 (field 1, varint), then field 99 (varint 1): a body from a newer protocol.
    const bytes = Uint8Array.from([0x08, 0x05, 0x98, 0x06, 0x01]);
    const envelope = decodeEnvelope(bytes);
    expect(envelope.reqId).toBe(5);
    expect(envelope.body).toBeUndefined();
  });

  it("round-trips through protobuf", () => {
    const envelope = sendRequest(77, "binary");
    expect(decodeEnvelope(encodeEnvelope(envelope))).toEqual(envelope);
  });
});

describe("JSON envelopes", () => {
  it("round-trips an envelope with a uint64 id beyond 2^53 as a string", () => {
    const envelope: Envelope = {
      reqId: 7,
      body: {
        $case: "sendResp",
        value: {
          clientMsgId: "c1",
          msgId: "18446744073709551615",
          seq: 3,
          convId: "p:1:2",
          sentAtMs: "1700000000000",
          duplicate: true,
        },
      },
    };
    const text = envelopeToJson(envelope);
    expect(JSON.parse(text)).toMatchObject({ reqId: 7, sendResp: { msgId: "18446744073709551615" } });
    expect(envelopeFromJson(text)).toEqual(envelope);
  });

  it("answers MALFORMED_FRAME for text that is not JSON or not a JSON object", () => {
    for (const text of ["nope", "{", "", "[]", "null", "5", '"x"', "true"]) {
      expect(codeOf(() => envelopeFromJson(text))).toBe(ErrorCode.MALFORMED_FRAME);
    }
  });

  it("answers MALFORMED_FRAME for a reqId that is not a uint32", () => {
    for (const text of ['{"reqId":"abc"}', '{"reqId":-1}', '{"reqId":1.5}', '{"reqId":4294967296}']) {
      expect(codeOf(() => envelopeFromJson(text))).toBe(ErrorCode.MALFORMED_FRAME);
    }
  });

  it("answers INVALID_ARGUMENT with the reqId for an object, array or boolean where a field holds a string or number", () => {
    for (const body of [
      '{"toUid":"2","clientMsgId":"c","kind":"MESSAGE_KIND_TEXT","text":{"a":1}}',
      '{"toUid":"2","clientMsgId":"c","kind":"MESSAGE_KIND_TEXT","text":["x"]}',
      '{"toUid":"2","clientMsgId":"c","kind":"MESSAGE_KIND_TEXT","text":true}',
      '{"toUid":{"n":2},"clientMsgId":"c","kind":"MESSAGE_KIND_TEXT","text":"hi"}',
      '{"toUid":"2","clientMsgId":["c"],"kind":"MESSAGE_KIND_TEXT","text":"hi"}',
    ]) {
      let caught: unknown;
      try {
        envelopeFromJson(`{"reqId":9,"sendReq":${body}}`);
      } catch (err) {
        caught = err;
      }
      expect(caught, body).toBeInstanceOf(BadFieldValueError);
      expect(caught).toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, reqId: 9 });
    }
    // The same request with its fields' own JSON types is read as sent.
    const ok = envelopeFromJson(
      '{"reqId":9,"sendReq":{"toUid":"2","clientMsgId":"c","kind":"MESSAGE_KIND_TEXT","text":"hi"}}',
    );
    expect(ok.body).toMatchObject({ $case: "sendReq", value: { toUid: "2", text: "hi" } });
  });

  it("reads a JSON object without a known body as an envelope with no body", () => {
    expect(envelopeFromJson('{"reqId": 4, "somethingNew": {}}')).toEqual({ reqId: 4, body: undefined });
  });
});
