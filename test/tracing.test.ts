import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AppError, ErrorCode } from "../src/errors.js";
import { VerifyServiceService } from "../src/gen/shardchat/v1/verify.js";
import { addApi, grpcClient, startGrpcServer } from "../src/grpc/api.js";
import { createTracing, type TracingSettings } from "../src/tracing/create.js";
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from "./helpers/otlp-receiver.js";
import { ROOT } from "./helpers/processes.js";

const run = promisify(execFile);
const log = pino({ level: "silent" });

/** OTLP's span kinds as the receiver sees them. */
const KIND = { internal: 1, server: 2, client: 3 } as const;
const STATUS_ERROR = 2;

let receiver: OtlpReceiver;

function settings(overrides: Partial<TracingSettings> = {}): TracingSettings {
  return {
    TRACING_OTLP_URL: receiver.url,
    TRACING_SAMPLE_RATIO: 1,
    TRACING_EXPORT_INTERVAL_MS: 100,
    TRACING_QUEUE_MAX: 2048,
    ...overrides,
  };
}

const hex = (bytes: number) =>
  Array.from({ length: bytes }, () =>
    Math.floor(Math.random() * 256)
      .toString(16)
      .padStart(2, "0"),
  ).join("");

function inTrace(traceId: string): ReceivedSpan[] {
  return receiver.spans.filter((s) => s.traceId === traceId);
}

function named(spans: ReceivedSpan[], name: string): ReceivedSpan {
  const found = spans.filter((s) => s.name === name);
  expect(
    found.map((s) => s.name),
    `one span named ${name}`,
  ).toEqual([name]);
  return found[0] as ReceivedSpan;
}

beforeAll(async () => {
  receiver = await startOtlpReceiver();
});

afterAll(async () => {
  await receiver?.close();
});

describe("tracing, the OpenTelemetry adapter exporting to a real OTLP/HTTP receiver", () => {
  it("exports spans with their service, instance, caller, parent and status", async () => {
    const tracing = await createTracing(settings(), { service: "shardchat-test", instance: "node-a" }, log);
    expect(tracing.enabled).toBe(true);
    const traceId = hex(16);
    const callerSpanId = hex(8);
    const request = tracing.startSpan("POST /v1/things", {
      kind: "server",
      remoteParent: { traceparent: `00-${traceId}-${callerSpanId}-01` },
      attributes: { "shardchat.node_id": "node-a" },
    });
    expect(request.sampled).toBe(true);
    const inner = tracing.withSpan(request, () => tracing.childSpan("inner", { kind: "internal" }));
    // Outside any span there is no trace to continue.
    expect(tracing.childSpan("outside", { kind: "internal" })).toBeUndefined();
    inner?.end(new AppError(ErrorCode.RATE_LIMITED, "slow down"));
    request.end();
    await tracing.close();

    const spans = inTrace(traceId);
    const server = named(spans, "POST /v1/things");
    expect(server).toMatchObject({
      parentSpanId: callerSpanId,
      kind: KIND.server,
      service: "shardchat-test",
      instance: "node-a",
      attributes: { "shardchat.node_id": "node-a" },
    });
    expect(server.statusCode).not.toBe(STATUS_ERROR);
    const child = named(spans, "inner");
    expect(child).toMatchObject({ parentSpanId: server.spanId, kind: KIND.internal, statusCode: STATUS_ERROR });
    expect(child.attributes["error.type"]).toBe("RATE_LIMITED");
    // The span's context for an outgoing carrier names it as the parent.
    expect(request.headers().traceparent).toBe(`00-${traceId}-${server.spanId}-01`);
  });

  it("keeps or drops a trace whole: a caller's decision wins over TRACING_SAMPLE_RATIO", async () => {
    const tracing = await createTracing(settings({ TRACING_SAMPLE_RATIO: 0 }), { service: "shardchat-test" }, log);
    const dropped = hex(16);
    const kept = hex(16);
    const fresh = tracing.startSpan("new trace at ratio 0", { kind: "server" });
    const unsampledCaller = tracing.startSpan("unsampled caller", {
      kind: "server",
      remoteParent: { traceparent: `00-${dropped}-${hex(8)}-00` },
    });
    const sampledCaller = tracing.startSpan("sampled caller", {
      kind: "server",
      remoteParent: { traceparent: `00-${kept}-${hex(8)}-01` },
    });
    expect([fresh.sampled, unsampledCaller.sampled, sampledCaller.sampled]).toEqual([false, false, true]);
    // An unsampled span still passes its decision on.
    expect(unsampledCaller.headers().traceparent).toMatch(new RegExp(`^00-${dropped}-[0-9a-f]{16}-00$`));
    for (const span of [fresh, unsampledCaller, sampledCaller]) span.end();
    await tracing.close();
    expect(inTrace(dropped)).toEqual([]);
    expect(receiver.spans.some((s) => s.name === "new trace at ratio 0")).toBe(false);
    expect(inTrace(kept).map((s) => s.name)).toEqual(["sampled caller"]);
  });

  it("carries a trace between two real gRPC endpoints in metadata, and leaves untraced calls alone", async () => {
    const gate = await createTracing(settings(), { service: "shardchat-gate", instance: "gate-1" }, log);
    const verify = await createTracing(settings(), { service: "shardchat-verify", instance: "verify-1" }, log);
    const server = await startGrpcServer("127.0.0.1:0", (s) =>
      addApi(
        s,
        VerifyServiceService,
        {
          async getVerifyCode({ email }) {
            // Work the call does is in its server span.
            verify.childSpan("verify.work", { kind: "internal" })?.end();
            if (email === "limited@example.com") return { error: ErrorCode.RATE_LIMITED, retryAfterSeconds: 5 };
            return { error: ErrorCode.OK, retryAfterSeconds: 0 };
          },
          async consumeVerifyCode() {
            throw new AppError(ErrorCode.VERIFY_CODE_WRONG);
          },
        },
        {},
        verify,
      ),
    );
    const client = grpcClient(VerifyServiceService, `127.0.0.1:${server.port}`, { deadlineMs: 5000, tracing: gate });
    let traceId = "";
    try {
      const request = gate.startSpan("POST /v1/verify-code", { kind: "server" });
      traceId = /^00-([0-9a-f]{32})-/.exec(request.headers().traceparent ?? "")?.[1] ?? "";
      await gate.withSpan(request, async () => {
        await client.api.getVerifyCode({ email: "a@example.com", clientAddr: "" });
        await client.api.getVerifyCode({ email: "limited@example.com", clientAddr: "" });
        await expect(
          client.api.consumeVerifyCode({ email: "a@example.com", code: "1", checkOnly: false }),
        ).rejects.toThrow(AppError);
      });
      request.end();
      // No trace around it: no metadata sent, no span on either side.
      await client.api.getVerifyCode({ email: "untraced@example.com", clientAddr: "" });
    } finally {
      client.close();
      await server.close();
      await gate.close();
      await verify.close();
    }

    expect(traceId).not.toBe("");
    const spans = inTrace(traceId);
    const root = named(spans, "POST /v1/verify-code");
    const get = "shardchat.v1.VerifyService/GetVerifyCode";
    const clients = spans.filter((s) => s.kind === KIND.client);
    const servers = spans.filter((s) => s.kind === KIND.server && s.name !== root.name);
    expect(clients.map((s) => s.name).sort()).toEqual(
      [get, get, "shardchat.v1.VerifyService/ConsumeVerifyCode"].sort(),
    );
    expect(servers).toHaveLength(3);
    for (const call of clients) {
      expect(call).toMatchObject({ parentSpanId: root.spanId, service: "shardchat-gate", instance: "gate-1" });
      // Each client span is the parent of exactly one server span on the other side.
      const served = servers.filter((s) => s.parentSpanId === call.spanId);
      expect(served).toHaveLength(1);
      expect(served[0]).toMatchObject({ name: call.name, service: "shardchat-verify", instance: "verify-1" });
    }
    // Replies and failures that carry a code of the error table are errors on both sides.
    const failed = spans.filter((s) => s.statusCode === STATUS_ERROR).map((s) => s.attributes["error.type"]);
    expect(failed.sort()).toEqual(["RATE_LIMITED", "RATE_LIMITED", "VERIFY_CODE_WRONG", "VERIFY_CODE_WRONG"]);
    // The work inside each GetVerifyCode is under its server span.
    const work = spans.filter((s) => s.name === "verify.work");
    expect(work).toHaveLength(2);
    for (const w of work) expect(servers.map((s) => s.spanId)).toContain(w.parentSpanId);
    // The untraced call made no span anywhere: every GetVerifyCode span is in the traced request.
    expect(receiver.spans.filter((s) => s.name === get)).toHaveLength(4);
  });
});

describe("tracing off", () => {
  it("is the no-op port, and a process that loads the services never loads the OpenTelemetry SDK", async () => {
    const off = await createTracing(settings({ TRACING_OTLP_URL: "" }), { service: "shardchat-test" }, log);
    expect(off.enabled).toBe(false);
    expect(off.childSpan("x", { kind: "internal" })).toBeUndefined();

    // A module hook in a child process records every @opentelemetry module that is loaded.
    const dir = mkdtempSync(join(tmpdir(), "tracing-off-"));
    try {
      writeFileSync(
        join(dir, "hooks.mjs"),
        `import { appendFileSync } from "node:fs";
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  if (result.url.includes("/@opentelemetry/")) appendFileSync(process.env.LOADED_LOG, result.url + "\\n");
  return result;
}`,
      );
      writeFileSync(
        join(dir, "register.mjs"),
        `import { register } from "node:module"; register("./hooks.mjs", import.meta.url);`,
      );
      const loaded = async (url: string): Promise<string[]> => {
        const logFile = join(dir, `loaded-${url === "" ? "off" : "on"}.log`);
        writeFileSync(logFile, "");
        const script = `
          await import(${JSON.stringify(join(ROOT, "src/chat/server.ts"))});
          await import(${JSON.stringify(join(ROOT, "src/gate/app.ts"))});
          const { createTracing } = await import(${JSON.stringify(join(ROOT, "src/tracing/create.ts"))});
          const quiet = { info() {}, warn() {} };
          const tracing = await createTracing(${JSON.stringify(settings({ TRACING_OTLP_URL: url }))}, { service: "x" }, quiet);
          await tracing.close();`;
        await run(
          process.execPath,
          ["--import", "tsx", "--import", join(dir, "register.mjs"), "--input-type=module", "-e", script],
          { cwd: ROOT, env: { ...process.env, LOADED_LOG: logFile }, timeout: 60_000 },
        );
        return readFileSync(logFile, "utf8").split("\n").filter(Boolean);
      };
      // The hook sees the SDK when tracing is on (so its silence below means something) ...
      expect((await loaded(receiver.url)).some((u) => u.includes("/@opentelemetry/sdk-trace/"))).toBe(true);
      // ... and no OpenTelemetry module at all when it is off.
      expect(await loaded("")).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
