import { groupIdOfConv } from "../../ids/identifiers.js";
import type { Uid } from "../../storage/ports.js";
import type { HandlerContext } from "./context.js";
import { peerOf } from "./conversations.js";

/**
 * Who else is in a conversation: the peer of a 1:1 conversation, a group's other members (one
 * read of the member list). Empty for a conversation this node cannot place.
 */
export async function participantsOf(ctx: HandlerContext, convId: string, uid: Uid): Promise<Uid[]> {
  const peer = peerOf(convId, uid);
  if (peer !== undefined) return [peer];
  const groupId = groupIdOfConv(convId);
  const groups = ctx.groups;
  if (groupId === undefined || !groups) return [];
  const members = await groups.memberUids(groupId);
  return members.filter((member) => member !== uid);
}
