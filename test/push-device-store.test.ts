import { describe, expect, it } from "vitest";
import { uidOf } from "../src/ids/identifiers.js";
import type { PushDeviceRecord, Uid } from "../src/storage/ports.js";
import { contractBackends, openedForSuite } from "./helpers/backends.js";

/**
 * Push devices (issue 18) through the store API, the same contract on SQLite, one MySQL and
 * sharded MySQL: register or replace by (uid, deviceId), the per-user limit dropping the least
 * recently registered, unregister, list newest first, and drop only while the token is the one
 * the provider called gone. Sharded, a user's rows are on its uid's shard alone.
 */
describe.each(contractBackends({ tag: "sc-push-devices-" }))("push devices on $name", (backend) => {
  const s = openedForSuite(backend);
  let next = 7_500_000_000_000_000_000n;
  const id = () => uidOf(next++);
  const AT = 1_700_000_000_000;

  const device = (uid: Uid, deviceId: string, token: string, updatedAt: number): PushDeviceRecord => ({
    uid,
    deviceId,
    provider: "webpush",
    kind: "web",
    token,
    updatedAt,
  });

  it("registers, replaces by (uid, deviceId), lists newest first, and keeps users apart", async () => {
    const [a, b] = [id(), id()];
    expect(await s.pushDevices.register(device(a, "laptop", "t1", AT), 10)).toBe(0);
    expect(
      await s.pushDevices.register({ ...device(a, "phone", "t2", AT + 1), provider: "fcm", kind: "mobile" }, 10),
    ).toBe(0);
    expect(await s.pushDevices.register(device(b, "laptop", "t3", AT + 2), 10)).toBe(0);
    expect(await s.pushDevices.list(a)).toEqual([
      { uid: a, deviceId: "phone", provider: "fcm", kind: "mobile", token: "t2", updatedAt: AT + 1 },
      { uid: a, deviceId: "laptop", provider: "webpush", kind: "web", token: "t1", updatedAt: AT },
    ]);
    // The same device again: its token, kind and time replaced, still one row.
    await s.pushDevices.register({ ...device(a, "laptop", "t1-new", AT + 5), kind: "desktop" }, 10);
    const after = await s.pushDevices.list(a);
    expect(after.find((d) => d.deviceId === "laptop")?.kind).toBe("desktop");
    expect(after.map((d) => [d.deviceId, d.token, d.updatedAt])).toEqual([
      ["laptop", "t1-new", AT + 5],
      ["phone", "t2", AT + 1],
    ]);
    expect((await s.pushDevices.list(b)).map((d) => d.token)).toEqual(["t3"]);
    expect(await s.pushDevices.list(id())).toEqual([]);
  });

  it("keeps the newest maxPerUser devices: registering past it drops the least recently registered", async () => {
    const uid = id();
    for (let i = 0; i < 3; i++) await s.pushDevices.register(device(uid, `d${i}`, `t${i}`, AT + i), 3);
    expect(await s.pushDevices.register(device(uid, "d3", "t3", AT + 3), 3)).toBe(1);
    expect((await s.pushDevices.list(uid)).map((d) => d.deviceId)).toEqual(["d3", "d2", "d1"]);
    // Re-registering an existing one makes it the newest, dropping nothing.
    expect(await s.pushDevices.register(device(uid, "d1", "t1", AT + 4), 3)).toBe(0);
    expect(await s.pushDevices.register(device(uid, "d4", "t4", AT + 5), 3)).toBe(1);
    expect((await s.pushDevices.list(uid)).map((d) => d.deviceId)).toEqual(["d4", "d1", "d3"]);
    // A lower limit (the setting changed) trims at the next registration.
    expect(await s.pushDevices.register(device(uid, "d5", "t5", AT + 6), 1)).toBe(3);
    expect((await s.pushDevices.list(uid)).map((d) => d.deviceId)).toEqual(["d5"]);
  });

  it("unregisters one device, idempotently", async () => {
    const uid = id();
    await s.pushDevices.register(device(uid, "a", "ta", AT), 10);
    await s.pushDevices.register(device(uid, "b", "tb", AT + 1), 10);
    expect(await s.pushDevices.unregister(uid, "a")).toBe(true);
    expect(await s.pushDevices.unregister(uid, "a")).toBe(false);
    expect(await s.pushDevices.unregister(uid, "never")).toBe(false);
    expect((await s.pushDevices.list(uid)).map((d) => d.deviceId)).toEqual(["b"]);
  });

  it("unregisters every device of a user at once (account deletion), no one else's", async () => {
    const [uid, other] = [id(), id()];
    await s.pushDevices.register(device(uid, "a", "ta", AT), 10);
    await s.pushDevices.register(device(uid, "b", "tb", AT + 1), 10);
    await s.pushDevices.register(device(other, "a", "tc", AT), 10);
    expect(await s.pushDevices.unregisterAll(uid)).toBe(2);
    expect(await s.pushDevices.unregisterAll(uid)).toBe(0);
    expect(await s.pushDevices.list(uid)).toEqual([]);
    expect((await s.pushDevices.list(other)).map((d) => d.token)).toEqual(["tc"]);
  });

  it("drops a gone device only while it holds the token the provider refused", async () => {
    const uid = id();
    await s.pushDevices.register(device(uid, "web", "old", AT), 10);
    // Re-subscribed meanwhile: the refusal of the old token must not drop the new one.
    await s.pushDevices.register(device(uid, "web", "new", AT + 1), 10);
    expect(await s.pushDevices.drop(uid, "web", "old")).toBe(false);
    expect((await s.pushDevices.list(uid)).map((d) => d.token)).toEqual(["new"]);
    expect(await s.pushDevices.drop(uid, "web", "new")).toBe(true);
    expect(await s.pushDevices.list(uid)).toEqual([]);
    expect(await s.pushDevices.drop(uid, "web", "new")).toBe(false);
  });

  it("stores a subscription's JSON as given (long tokens, every character)", async () => {
    const uid = id();
    const token = JSON.stringify({
      endpoint: `https://push.example/${"x".repeat(900)}?ü=✓`,
      keys: { p256dh: "B".repeat(87), auth: "a".repeat(22) },
    });
    await s.pushDevices.register(device(uid, "long", token, AT), 10);
    expect((await s.pushDevices.list(uid))[0]?.token).toBe(token);
  });

  it.runIf(backend.name === "sharded mysql")("keeps a user's devices on its uid's shard", async () => {
    if (!s.holders || !s.ownerOf) throw new Error("the sharded backend answers holders and ownerOf");
    const uid = id();
    await s.pushDevices.register(device(uid, "one", "t", AT), 10);
    await s.pushDevices.register(device(uid, "two", "t", AT), 10);
    expect(await s.holders("SELECT 1 FROM push_devices WHERE uid = ?", [uid])).toEqual([s.ownerOf(uid)]);
  });
});
