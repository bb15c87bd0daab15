import { sampled } from "../log/logger.js";
import type { Uid } from "../storage/ports.js";
import { recordPresence } from "../webhooks/events.js";
import type { HandlerContext } from "./handlers/context.js";

/**
 * Tells uid's online friends that it came online (its first device) or went offline (its last
 * device), from the session routes: called after a login's route is written and after a closed
 * session's route is removed. Never throws: presence is a hint, the friend list answers it too.
 */
export async function announcePresence(ctx: HandlerContext, uid: Uid, online: boolean): Promise<void> {
  const friends = ctx.config.CHAT_PRESENCE_PUSH ? ctx.friends : undefined;
  // user.online / user.offline webhooks (issue 18) ask the same question of the routes.
  const hook = ctx.webhooks?.wants(online ? "user.online" : "user.offline") ? ctx.webhooks : undefined;
  if (!friends && !hook) return;
  try {
    const devices = (await ctx.routes.lookupAll([uid])).get(uid) ?? [];
    // Online: only when this is the one device; offline: only when none is left.
    if (online ? devices.length !== 1 : devices.length !== 0) return;
    if (hook) ctx.background(recordPresence(hook, uid, online));
    if (!friends) return;
    const list = await friends.friends(uid, ctx.config.FRIENDS_MAX);
    if (list.length === 0) return;
    await ctx.fanout.notice(
      list.map((f) => f.uid),
      { reqId: 0, body: { $case: "presencePush", value: { uid, online } } },
    );
  } catch (err) {
    ctx.log.warn(sampled({ err, uid }), "cannot announce presence");
  }
}
