import { describe, expect, it } from "vitest";
import { ChatLimits } from "../src/chat/limits.js";
import type { Session } from "../src/chat/session.js";
import { AppError, ErrorCode } from "../src/errors.js";
import { createMetrics } from "../src/metrics/metrics.js";
import { MemoryRateLimiter } from "../src/routing/memory/rate-limiter.js";

const settings = { messagesPerConnection: 3, messagesPerUser: 4, friendApplicationsPerDay: 2 };

function session(uid: string): Session {
  return { uid } as Session;
}

async function code(call: Promise<void>): Promise<ErrorCode> {
  try {
    await call;
    return ErrorCode.OK;
  } catch (err) {
    return err instanceof AppError ? err.code : ErrorCode.INTERNAL;
  }
}

describe("ChatLimits", () => {
  it("limits messages per connection per second, then opens a new window", async () => {
    const limits = new ChatLimits(new MemoryRateLimiter(), settings, createMetrics("chat"));
    const s = session("1");
    const t = 1_000_000;
    const codes = [];
    for (let i = 0; i < 4; i++) codes.push(await code(limits.message(s, t + i)));
    expect(codes).toEqual([ErrorCode.OK, ErrorCode.OK, ErrorCode.OK, ErrorCode.RATE_LIMITED]);
    expect(await code(limits.message(s, t + 1000))).toBe(ErrorCode.OK);
  });

  it("limits one user's messages across connections", async () => {
    const metrics = createMetrics("chat");
    const limits = new ChatLimits(new MemoryRateLimiter(), settings, metrics);
    const [a, b] = [session("2"), session("2")];
    const codes = [];
    for (const s of [a, a, b, b, b]) codes.push(await code(limits.message(s)));
    expect(codes).toEqual([ErrorCode.OK, ErrorCode.OK, ErrorCode.OK, ErrorCode.OK, ErrorCode.RATE_LIMITED]);
    expect(await code(limits.message(session("3")))).toBe(ErrorCode.OK);
    expect((await metrics.rateLimited.get()).values).toEqual([
      expect.objectContaining({ labels: { limit: "chat_user" }, value: 1 }),
    ]);
  });

  it("limits friend applications per user and day", async () => {
    const limits = new ChatLimits(new MemoryRateLimiter(), settings, createMetrics("chat"));
    const codes = [];
    for (let i = 0; i < 3; i++) codes.push(await code(limits.friendApply("4")));
    expect(codes).toEqual([ErrorCode.OK, ErrorCode.OK, ErrorCode.RATE_LIMITED]);
    expect(await code(limits.friendApply("5"))).toBe(ErrorCode.OK);
  });
});
