import type { ChatMessage } from "../../packages/protocol/src/wire.js";
import type { DeviceName } from "../routing/ports.js";
import type { Uid } from "../storage/ports.js";

/**
 * Who a stored message found with no session on any node, as the fan-out learned it (no
 * extra lookups): where push notifications and the offline-message webhook start. The fan-out
 * calls it once per message, after the pushes; it must neither throw nor wait (queue the work).
 */
export interface OfflineRecipients {
  offline(message: ChatMessage, uids: Uid[]): void;
}

/** Every listener that is configured, as one; undefined when none is (the fan-out then collects nobody). */
export function allOfflineRecipients(listeners: (OfflineRecipients | undefined)[]): OfflineRecipients | undefined {
  const present = listeners.filter((l): l is OfflineRecipients => l !== undefined);
  if (present.length === 0) return undefined;
  if (present.length === 1) return present[0];
  return {
    offline(message, uids) {
      for (const listener of present) listener.offline(message, uids);
    },
  };
}

/**
 * A recipient the message reached on some device kinds only (push notifications: a phone while
 * its user is on the desktop). The fan-out calls it on the recipient's node, once per reached
 * user missing a kind, after the pushes; it must neither throw nor wait (queue the work).
 */
export interface OfflineDeviceKinds {
  kindsOffline(message: ChatMessage, uid: Uid, online: readonly DeviceName[]): void;
}
