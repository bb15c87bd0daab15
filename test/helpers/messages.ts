import { MessageKind } from "../../packages/protocol/src/wire.js";
import { convIdForPair, type DecimalId } from "../../src/ids/identifiers.js";
import type { NewMessage, Uid } from "../../src/storage/ports.js";

/** A 1:1 text message as the message stores take it. */
export function textMessage(
  sender: Uid,
  recipient: Uid,
  text: string,
  ids: { msgId: DecimalId; clientMsgId: string; sentAtMs: number },
): NewMessage {
  return {
    convId: convIdForPair(sender, recipient),
    members: [sender, recipient],
    sender,
    recipient,
    kind: MessageKind.TEXT,
    text,
    ...ids,
  };
}
