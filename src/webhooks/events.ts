import { GroupEventKind, type GroupEventPush } from "../../packages/protocol/src/wire.js";
import type { IdGenerator } from "../ids/ports.js";
import type { Logger } from "../log/logger.js";
import { sampled } from "../log/logger.js";
import type { Metrics } from "../metrics/metrics.js";
import type { Uid, WebhookOutboxStore } from "../storage/ports.js";
import type { EndpointTable, WebhookEventType } from "./endpoints.js";

/**
 * What the chat node tells webhooks besides stored messages (whose after-send rows the stores
 * write themselves): presence, friend and group changes, offline recipients. Each is an outbox
 * row of its own, recorded after the change it reports (not in its transaction: a process that
 * dies in between loses that one notice, never a message's event).
 */
export interface WebhookEvents {
  /** Whether an endpoint listens to type: callers build nothing otherwise. */
  wants(type: WebhookEventType): boolean;
  /**
   * Records the event on placeKey's instance (its order is the key's). Never rejects (a failure
   * is logged and counted): callers hand it to the node's background work. `eventId` is for an
   * event that must keep one id (message.offline); else one is made.
   */
  record(type: WebhookEventType, placeKey: string, data: Record<string, unknown>, eventId?: string): Promise<void>;
}

export interface OutboxWebhookEventsDeps {
  outbox: WebhookOutboxStore;
  endpoints: EndpointTable;
  ids: IdGenerator;
  log: Logger;
  metrics?: Pick<Metrics, "webhookRecordFailed">;
}

/** WebhookEvents into the outbox (the dispatcher sends them). */
export class OutboxWebhookEvents implements WebhookEvents {
  constructor(private readonly deps: OutboxWebhookEventsDeps) {}

  wants(type: WebhookEventType): boolean {
    return this.deps.endpoints.subscribed(type);
  }

  async record(
    type: WebhookEventType,
    placeKey: string,
    data: Record<string, unknown>,
    eventId?: string,
  ): Promise<void> {
    if (!this.wants(type)) return;
    try {
      const pos = this.deps.ids.next();
      await this.deps.outbox.add([
        {
          placeKey,
          pos,
          eventId: eventId ?? `evt_${pos}`,
          type,
          payloadJson: JSON.stringify(data),
          createdAt: Date.now(),
        },
      ]);
    } catch (err) {
      this.deps.metrics?.webhookRecordFailed.inc({ type });
      this.deps.log.warn(sampled({ err, type, placeKey }), "cannot record a webhook event");
    }
  }
}

/** The webhook event of each group change the members are told of. */
const GROUP_EVENT_TYPES: Partial<Record<GroupEventKind, WebhookEventType>> = {
  [GroupEventKind.CREATED]: "group.created",
  [GroupEventKind.MEMBERS_ADDED]: "group.members_added",
  [GroupEventKind.MEMBER_LEFT]: "group.member_left",
  [GroupEventKind.MEMBER_KICKED]: "group.member_kicked",
  [GroupEventKind.RENAMED]: "group.renamed",
  [GroupEventKind.ROLE_CHANGED]: "group.role_changed",
  [GroupEventKind.MEMBER_MUTED]: "group.member_muted",
  [GroupEventKind.MUTED_ALL]: "group.muted_all",
  [GroupEventKind.ANNOUNCEMENT]: "group.announcement",
  [GroupEventKind.DISSOLVED]: "group.dissolved",
  [GroupEventKind.JOIN_APPROVAL]: "group.join_approval",
  [GroupEventKind.RETENTION]: "group.retention",
};

const ROLE_NAMES: Record<number, string> = { 1: "member", 2: "admin", 3: "owner" };

/** A group change as the push members get, recorded on the group's conversation (its order is the group's). */
export function recordGroupEvent(events: WebhookEvents | undefined, event: GroupEventPush): Promise<void> {
  const type = GROUP_EVENT_TYPES[event.kind];
  const group = event.group;
  if (!events || !type || !group || !events.wants(type)) return Promise.resolve();
  const data: Record<string, unknown> = {
    groupId: group.groupId,
    convId: group.convId,
    name: group.name,
    owner: group.owner,
    memberCount: group.memberCount,
    actor: event.actor,
    uids: event.uids,
  };
  if (event.kind === GroupEventKind.ROLE_CHANGED) data.role = ROLE_NAMES[event.role] ?? String(event.role);
  if (event.untilMs !== undefined) data.untilMs = Number(event.untilMs);
  return events.record(type, group.convId, data);
}

/** user.online / user.offline: a user's first device logged in, or its last one left. */
export function recordPresence(events: WebhookEvents | undefined, uid: Uid, online: boolean): Promise<void> {
  const type = online ? "user.online" : "user.offline";
  if (!events?.wants(type)) return Promise.resolve();
  return events.record(type, uid, { uid, atMs: Date.now() });
}

/** friend.applied, friend.accepted, friend.declined, friend.removed, recorded on the acting user (its order is the user's). */
export function recordFriendEvent(
  events: WebhookEvents | undefined,
  type: "friend.applied" | "friend.accepted" | "friend.declined" | "friend.removed",
  actor: Uid,
  other: Uid,
  message?: string,
): Promise<void> {
  if (!events?.wants(type)) return Promise.resolve();
  return events.record(type, actor, {
    uid: actor,
    other,
    ...(message !== undefined ? { message } : {}),
    atMs: Date.now(),
  });
}
