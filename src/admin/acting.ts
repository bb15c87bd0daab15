import type { ChatMessage } from "../../packages/protocol/src/wire.js";
import { AppError, ErrorCode } from "../errors.js";
import { directConvMembers, groupIdOfConv, isUid, type Uid } from "../ids/identifiers.js";
import type { AdminDeps } from "./deps.js";

/**
 * Whom a Server API request about a group or a conversation runs as on the chat nodes: a
 * group's owner (a privileged session then manages it whatever the role), a 1:1
 * conversation's first member (the stores check membership of the reader and the actor).
 */
export async function groupOwner(deps: Pick<AdminDeps, "groups">, groupId: string): Promise<Uid> {
  const group = await deps.groups.get(groupId);
  if (!group) throw new AppError(ErrorCode.GROUP_NOT_FOUND, `no group ${groupId}`);
  return group.owner;
}

export async function conversationActor(deps: Pick<AdminDeps, "groups">, convId: string): Promise<Uid> {
  const pair = directConvMembers(convId);
  if (pair) return pair[0];
  const groupId = groupIdOfConv(convId);
  if (groupId !== undefined && isUid(groupId)) return groupOwner(deps, groupId);
  throw new AppError(ErrorCode.INVALID_ARGUMENT, `"${convId}" is not a conversation id (p:<uid>:<uid> or g:<groupId>)`);
}

/** A message as the Server API answers it (the schema's fields of the wire's ChatMessage). */
export function messageJson(m: ChatMessage) {
  return {
    convId: m.convId,
    msgId: m.msgId,
    seq: m.seq,
    sender: m.sender,
    recipient: m.recipient,
    clientMsgId: m.clientMsgId,
    kind: m.kind,
    text: m.text,
    sentAtMs: m.sentAtMs,
    ...(m.custom ? { custom: { type: m.custom.type, payloadJson: m.custom.payloadJson } } : {}),
    ...(m.recalled ? { recalled: true } : {}),
    ...(m.editCount ? { editCount: m.editCount } : {}),
    ...(m.targetSeq ? { targetSeq: m.targetSeq } : {}),
  };
}
