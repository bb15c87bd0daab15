import { groupIdOfConv, type Uid } from "../../ids/identifiers.js";
import { messageKindName } from "../../storage/webhook-outbox.js";
import { rejection } from "../../webhooks/before-send.js";
import type { HandlerContext } from "./context.js";
import type { PreparedMessage } from "./send.js";

/**
 * The before-send webhook (issue 18), asked when WEBHOOK_BEFORE_SEND_URL is set, before a 1:1 or
 * group message is stored: a reject throws MESSAGE_REJECTED (nothing is stored), a rewrite
 * replaces the prepared text (what is stored and delivered). Without the hook: nothing, at no cost.
 */
export async function checkBeforeSend(
  ctx: HandlerContext,
  convId: string,
  sender: Uid,
  recipient: Uid | undefined,
  prepared: PreparedMessage,
  msgId: string,
): Promise<void> {
  const hook = ctx.beforeSend;
  if (!hook) return;
  const groupId = groupIdOfConv(convId);
  const custom = prepared.extras?.custom;
  const file = prepared.file;
  const decision = await hook.check(
    {
      convId,
      sender,
      ...(groupId !== undefined ? { groupId } : { recipient }),
      clientMsgId: prepared.clientMsgId,
      kind: messageKindName(prepared.kind),
      text: prepared.text,
      file: file ? { id: file.id, name: file.name, size: Number(file.size), contentType: file.contentType } : undefined,
      custom: custom ? { type: custom.type, payload: parsedOrText(custom.payloadJson) } : undefined,
    },
    msgId,
  );
  if (decision.action === "reject") throw rejection(decision);
  if (decision.action === "rewrite") prepared.text = decision.text;
}

function parsedOrText(json: string): unknown {
  try {
    return JSON.parse(json);
  } catch {
    return json;
  }
}
