import type { ChatMessage } from "../../packages/protocol/src/wire.js";
import type { OfflineRecipients } from "../chat/offline-recipients.js";
import { groupIdOfConv } from "../ids/identifiers.js";
import type { Uid } from "../storage/ports.js";
import { messageKindName } from "../storage/webhook-outbox.js";
import type { WebhookEvents } from "./events.js";

/** At most this many recipients per message.offline event (a big group's are split over several). */
const RECIPIENTS_PER_EVENT = 1000;

/**
 * message.offline (issue 18): who a stored message found with no session anywhere, for an
 * external push system. One event per message (per RECIPIENTS_PER_EVENT), on the message's
 * conversation, with an id made of the conversation, the seq and the part, so the same
 * message's notice is the same id on every attempt.
 */
export class OfflineMessageWebhook implements OfflineRecipients {
  constructor(
    private readonly events: WebhookEvents,
    private readonly background: (task: Promise<void>) => void,
  ) {}

  offline(message: ChatMessage, uids: Uid[]): void {
    if (uids.length === 0 || !this.events.wants("message.offline")) return;
    const groupId = groupIdOfConv(message.convId);
    for (let part = 0; part * RECIPIENTS_PER_EVENT < uids.length; part++) {
      const recipients = uids.slice(part * RECIPIENTS_PER_EVENT, (part + 1) * RECIPIENTS_PER_EVENT);
      const data = {
        convId: message.convId,
        seq: message.seq,
        msgId: message.msgId,
        sender: message.sender,
        ...(groupId !== undefined ? { groupId } : {}),
        kind: messageKindName(message.kind),
        text: message.text,
        recipients,
      };
      const id = `offline_${message.convId}_${message.seq}${part > 0 ? `_${part}` : ""}`;
      this.background(this.events.record("message.offline", message.convId, data, id));
    }
  }
}
