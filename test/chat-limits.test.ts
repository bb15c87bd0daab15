import { describe, expect, it } from "vitest";
import { ChatLimits } from "../src/chat/limits.js";
import type { Session } from "../src/chat/session.js";
import { AppError, ErrorCode } from "../src/errors.js";
import { createMetrics } from "../src/metrics/metrics.js";
import { MemoryRateLimiter } from "../src/routing/memory/rate-limiter.js";

const settings = {
  messagesPerConnection: 3,
  messagesPerUser: 4,
  groupCreatesPerDay: 20,
  groupInvitesPerDay: 500,
  reportsPerDay: 2,
  friendApplicationsPerDay: 2,
  requestsPerConnection: 5,
  searchesPerConnectionPerMinute: 2,
  typingMinIntervalMs: 2000,
  loginsPerSecond: 10,
  loginBurst: 3,
};

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

  it("limits reports per user and day", async () => {
    const limits = new ChatLimits(new MemoryRateLimiter(), settings, createMetrics("chat"));
    const codes = [];
    for (let i = 0; i < 3; i++) codes.push(await code(limits.report("4")));
    expect(codes).toEqual([ErrorCode.OK, ErrorCode.OK, ErrorCode.RATE_LIMITED]);
    // Its own count: a user's friend applications and other users' reports are apart.
    expect(await code(limits.friendApply("4"))).toBe(ErrorCode.OK);
    expect(await code(limits.report("5"))).toBe(ErrorCode.OK);
  });

  it("gives each connection a budget of other requests per second, and of searches per minute", () => {
    const metrics = createMetrics("chat");
    const limits = new ChatLimits(new MemoryRateLimiter(), settings, metrics);
    const s = session("6");
    const t = 2_000_000;
    const outcome = (kind: string, now: number) => {
      try {
        limits.request(s, kind, now);
        return ErrorCode.OK;
      } catch (err) {
        return err instanceof AppError ? err.code : ErrorCode.INTERNAL;
      }
    };
    const codes = Array.from({ length: 6 }, (_, i) => outcome("historyReq", t + i));
    expect(codes).toEqual([...Array(5).fill(ErrorCode.OK), ErrorCode.RATE_LIMITED]);
    // Another connection, and the next second, start afresh.
    expect(limits.request(session("6"), "historyReq", t)).toBeUndefined();
    expect(outcome("historyReq", t + 1000)).toBe(ErrorCode.OK);
    // Searches: 2 a minute, across seconds.
    expect([t + 2000, t + 3000, t + 4000].map((now) => outcome("searchUsersReq", now))).toEqual([
      ErrorCode.OK,
      ErrorCode.OK,
      ErrorCode.RATE_LIMITED,
    ]);
    expect(outcome("searchUsersReq", t + 2000 + 60_000)).toBe(ErrorCode.OK);
  });

  it("admits a burst of logins at once, then as many a second as the rate", async () => {
    const metrics = createMetrics("chat");
    const limits = new ChatLimits(new MemoryRateLimiter(), settings, metrics);
    expect(Array.from({ length: 4 }, () => limits.admitLogin())).toEqual([true, true, true, false]);
    // Ten a second: one is back after 100 ms, not two.
    await new Promise((r) => setTimeout(r, 150));
    expect([limits.admitLogin(), limits.admitLogin()]).toEqual([true, false]);
    expect((await metrics.rateLimited.get()).values).toEqual([
      expect.objectContaining({ labels: { limit: "chat_login" }, value: 2 }),
    ]);
  });
});
