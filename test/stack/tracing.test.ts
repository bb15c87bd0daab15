import { randomBytes } from "node:crypto";
import { type ChatClient, GateClient, type LoginAnswer, openChat } from "@shardchat/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChatMessage } from "../../packages/protocol/src/wire.js";
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from "../helpers/otlp-receiver.js";
import { waitFor } from "../helpers/processes.js";
import { codeFromMail } from "../helpers/smtp-sink.js";
import { type StackServices, stackInfraUp, startStackServices } from "../helpers/stack.js";

/**
 * Tracing on the local multi-shard stack (issue 20): every service exports to a real OTLP/HTTP
 * receiver in this test. A login made with a traceparent is one trace across gate and status;
 * one message between users on different chat nodes is one trace from the sender's node to the
 * recipient's, joined across the node-to-node Push stream.
 */
const KIND = { server: 2, client: 3, producer: 4, consumer: 5 } as const;

let receiver: OtlpReceiver;
let stack: StackServices;
let gate: GateClient;
const chats: ChatClient[] = [];

const password = (name: string) => `pw-${name}-secret`;

async function register(name: string): Promise<LoginAnswer> {
  const email = `${name}@tracing.test`;
  await gate.requestVerifyCode(email);
  const code = codeFromMail(await stack.smtp.waitForMail(email));
  await gate.register({ user: name, email, password: password(name), code });
  return gate.login(email, password(name));
}

/** The spans of one trace, once `ready` holds for them (spans arrive in each process's batches). */
async function traceOf(traceId: string, ready: (spans: ReceivedSpan[]) => boolean): Promise<ReceivedSpan[]> {
  const spans = () => receiver.spans.filter((s) => s.traceId === traceId);
  await waitFor(`the spans of trace ${traceId}`, () => ready(spans()), 60_000);
  return spans();
}

function only(spans: ReceivedSpan[], match: Partial<ReceivedSpan>, what: string): ReceivedSpan {
  const found = spans.filter((s) => Object.entries(match).every(([k, v]) => s[k as keyof ReceivedSpan] === v));
  expect(found, `one ${what} in ${JSON.stringify(spans.map((s) => [s.name, s.service, s.instance]))}`).toHaveLength(1);
  return found[0] as ReceivedSpan;
}

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  await stackInfraUp();
  stack = await startStackServices("tracing", {
    chatNodes: 2,
    env: {
      TRACING_OTLP_URL: receiver.url,
      TRACING_SAMPLE_RATIO: "1",
      TRACING_EXPORT_INTERVAL_MS: "200",
    },
  });
  gate = new GateClient(stack.gateUrl);
}, 300_000);

afterAll(async () => {
  await Promise.all(chats.map((c) => c.close().catch(() => undefined)));
  await stack?.stop();
  await receiver?.close();
}, 300_000);

describe("traces on the stack", () => {
  it("follows a login from the caller's traceparent through gate into status", async () => {
    await register("tracer0");
    const traceId = randomBytes(16).toString("hex");
    const callerSpanId = randomBytes(8).toString("hex");
    const res = await fetch(`${stack.gateUrl}/v1/login`, {
      method: "POST",
      headers: { "content-type": "application/json", traceparent: `00-${traceId}-${callerSpanId}-01` },
      body: JSON.stringify({ email: "tracer0@tracing.test", password: password("tracer0") }),
    });
    expect(res.status).toBe(200);
    const statusServerSpans = (spans: ReceivedSpan[]) =>
      spans.filter((s) => s.service === "shardchat-status" && s.kind === KIND.server);
    const spans = await traceOf(
      traceId,
      (s) =>
        statusServerSpans(s).length >= 2 && s.some((x) => x.kind === KIND.server && x.service === "shardchat-gate"),
    );
    const http = only(spans, { service: "shardchat-gate", kind: KIND.server }, "gate request span");
    expect(http).toMatchObject({ name: "POST /v1/login", parentSpanId: callerSpanId });
    expect(http.attributes["http.response.status_code"]).toBe(200);
    // Each status call: a client span on gate under the request, a server span on status under it.
    for (const method of ["GetChatNode", "IssueToken"]) {
      const name = `shardchat.v1.StatusService/${method}`;
      const call = only(spans, { name, kind: KIND.client }, `${method} client span`);
      expect(call).toMatchObject({ service: "shardchat-gate", parentSpanId: http.spanId });
      const served = only(spans, { name, kind: KIND.server }, `${method} server span`);
      expect(served).toMatchObject({ service: "shardchat-status", parentSpanId: call.spanId });
    }
  });

  it("follows one message from the sender's chat node to the recipient's, across the Push stream", async () => {
    // Register until the ring has put two users on different chat nodes.
    const logins: LoginAnswer[] = [];
    for (let i = 1; new Set(logins.map((l) => l.nodeId)).size < 2; i++) {
      if (i > 30) throw new Error("the ring put 30 users on one node");
      const login = await register(`tracer${i}`);
      if (!logins.some((l) => l.nodeId === login.nodeId)) logins.push(login);
    }
    const [from, to] = logins as [LoginAnswer, LoginAnswer];
    expect(from.nodeId).not.toBe(to.nodeId);
    const sender = await openChat(from, "tcp");
    const recipient = await openChat(to, "ws");
    chats.push(sender, recipient);
    const received: ChatMessage[] = [];
    recipient.on("message", (m) => received.push(m));

    const ack = await sender.sendText(to.uid, "traced across nodes");
    await waitFor("the message pushed to the recipient", () => received.some((m) => m.msgId === ack.msgId));

    // The send's fan-out names its conversation and seq: that finds the trace.
    let fanout: ReceivedSpan | undefined;
    await waitFor(
      "the send's fan-out span",
      () => {
        fanout = receiver.spans.find(
          (s) =>
            s.name === "chat.fanout" &&
            s.attributes["shardchat.conv_id"] === ack.convId &&
            s.attributes["shardchat.seq"] === ack.seq,
        );
        return fanout !== undefined;
      },
      60_000,
    );
    const traceId = (fanout as ReceivedSpan).traceId;
    const spans = await traceOf(
      traceId,
      (s) => s.some((x) => x.name === "chat.push") && s.some((x) => x.name === "chat.send"),
    );

    const send = only(spans, { name: "chat.send" }, "send span");
    // A client's send starts its trace (its frame carries no trace context).
    expect(send).toMatchObject({
      kind: KIND.server,
      service: "shardchat-chat",
      instance: from.nodeId,
      parentSpanId: "",
    });
    expect(send.attributes["shardchat.node_id"]).toBe(from.nodeId);
    expect(send.attributes["shardchat.uid"]).toBe(from.uid);
    const fan = only(spans, { name: "chat.fanout" }, "fan-out span");
    expect(fan).toMatchObject({ kind: KIND.producer, instance: from.nodeId, parentSpanId: send.spanId });
    // On the recipient's node: the delivery, the fan-out's child across the Push stream.
    const push = only(spans, { name: "chat.push" }, "push span");
    expect(push).toMatchObject({
      kind: KIND.consumer,
      service: "shardchat-chat",
      instance: to.nodeId,
      parentSpanId: fan.spanId,
    });
    expect(push.instance).not.toBe(send.instance);
    expect(push.attributes).toMatchObject({
      "shardchat.node_id": to.nodeId,
      "shardchat.via": "grpc",
      "shardchat.reached": 1,
    });
  });
});
