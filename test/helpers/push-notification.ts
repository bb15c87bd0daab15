import type { PushNotification } from "../../src/push/ports.js";

/** One notification as the notifier would shape it (alice's 1:1 message 7, badge 3), with overrides. */
export const notification = (over: Partial<PushNotification> = {}): PushNotification => ({
  title: "alice",
  body: "hello there",
  convId: "p:1001:1002",
  seq: 7,
  collapseKey: "p:1001:1002",
  badge: 3,
  ttlSeconds: 600,
  ...over,
});
