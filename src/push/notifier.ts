import { LRUCache } from "lru-cache";
import { type ChatMessage, MessageKind } from "../../packages/protocol/src/wire.js";
import type { OfflineDeviceKinds, OfflineRecipients } from "../chat/offline-recipients.js";
import { groupIdOfConv } from "../ids/identifiers.js";
import type { Logger } from "../log/logger.js";
import { sampled } from "../log/logger.js";
import type { Metrics } from "../metrics/metrics.js";
import type { DeviceName } from "../routing/ports.js";
import {
  type ConversationStore,
  type GroupStore,
  isEventKind,
  type PushDeviceRecord,
  type PushDeviceStore,
  type Uid,
  type UserStore,
} from "../storage/ports.js";
import type { PushDevice, PushNotification, PushProvider, PushProviderKind } from "./ports.js";

/** What the notifier reads of the settings (src/config/settings.ts, PUSH_*). */
export interface PushNotifierSettings {
  queueMax: number;
  concurrency: number;
  showPreview: boolean;
  previewMaxChars: number;
  ttlSeconds: number;
  /** CHAT_CONVERSATION_LIST_MAX: the conversations one read answers (mute and badge come from it). */
  conversationListMax: number;
  /** PUSH_DEVICE_CACHE_MS (0: no cache) and PUSH_DEVICE_CACHE_MAX: users' devices kept after a read. */
  deviceCacheMs: number;
  deviceCacheMax: number;
}

export interface PushNotifierDeps {
  providers: PushProvider[];
  devices: Pick<PushDeviceStore, "list" | "drop">;
  conversations: Pick<ConversationStore, "list">;
  users: Pick<UserStore, "byUid">;
  /** A group message's title is its group's name; without the store, the sender's. */
  groups?: Pick<GroupStore, "get">;
  settings: PushNotifierSettings;
  log: Logger;
  metrics?: Pick<Metrics, "pushes" | "pushQueueDropped">;
}

/** The body when previews are off (PUSH_SHOW_PREVIEW=false), and for content with no text to show. */
export const NEUTRAL_BODY = "New message";

/** One offline recipient of one message; `texts` (title and body) are read once per message. */
interface Job {
  message: ChatMessage;
  uid: Uid;
  texts: () => Promise<{ title: string; body: string }>;
  /** The device kinds the message reached the user on (their devices get nothing); absent: none. */
  online?: readonly DeviceName[];
}

/**
 * Push notifications for the recipients the fan-out found with no session anywhere (an
 * OfflineRecipients listener), and, on a recipient's node, for the devices of a kind the user
 * has no session of (an OfflineDeviceKinds listener: its phone while it is on the desktop).
 * The fan-out only queues: a bounded queue (PUSH_QUEUE_MAX, past it
 * recipients are dropped and counted) worked by PUSH_CONCURRENCY workers, so neither a slow push
 * service nor a large group's offline members ever hold a message's fan-out. Per recipient: its
 * devices (one read on its shard; most users have none, which ends it there), then its
 * conversation list (one read: the mute of this conversation and every unread count, summed into
 * the badge), then one request per device to its provider; a device the provider calls gone is
 * dropped. Devices are read once per user per PUSH_DEVICE_CACHE_MS (most users have none, and a
 * user on the desktop gets a job for each message), not once per message. Events (recall,
 * edit, reaction) and the sender's own devices get nothing. Failures are
 * logged and counted, never retried: the message is stored and reaches the app by sync.
 */
export class PushNotifier implements OfflineRecipients, OfflineDeviceKinds {
  readonly #deps: PushNotifierDeps;
  readonly #providers = new Map<PushProviderKind, PushProvider>();
  readonly #devices: LRUCache<Uid, PushDeviceRecord[]> | undefined;
  #queue: Job[] = [];
  #head = 0;
  #running = 0;
  /** A pump is scheduled for the next turn of the event loop. */
  #scheduled = false;
  #closed = false;
  #idleWaiters: (() => void)[] = [];

  constructor(deps: PushNotifierDeps) {
    this.#deps = deps;
    for (const provider of deps.providers) this.#providers.set(provider.kind, provider);
    const { deviceCacheMs, deviceCacheMax } = deps.settings;
    this.#devices = deviceCacheMs > 0 ? new LRUCache({ max: deviceCacheMax, ttl: deviceCacheMs }) : undefined;
  }

  offline(message: ChatMessage, uids: Uid[]): void {
    this.#enqueue(message, uids);
  }

  kindsOffline(message: ChatMessage, uid: Uid, online: readonly DeviceName[]): void {
    this.#enqueue(message, [uid], online);
  }

  #enqueue(message: ChatMessage, uids: Uid[], online?: readonly DeviceName[]): void {
    if (this.#closed || isEventKind(message.kind)) return;
    const recipients = uids.filter((uid) => uid !== message.sender);
    if (recipients.length === 0) return;
    let texts: Promise<{ title: string; body: string }> | undefined;
    const textsOnce = () => {
      texts ??= this.#textsOf(message);
      return texts;
    };
    const room = this.#deps.settings.queueMax - this.#queued();
    const taken = recipients.slice(0, Math.max(0, room));
    if (taken.length < recipients.length) this.#deps.metrics?.pushQueueDropped.inc(recipients.length - taken.length);
    for (const uid of taken) this.#queue.push({ message, uid, texts: textsOnce, ...(online ? { online } : {}) });
    // Not now: a store's first read may run synchronously (SQLite), and the fan-out's turn is not ours.
    if (!this.#scheduled && taken.length > 0) {
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        this.#pump();
      });
    }
  }

  /** Resolves once nothing is queued or being sent (close; tests). */
  idle(): Promise<void> {
    if (this.#queued() === 0 && this.#running === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /**
   * Takes no more recipients, forgets the queued ones (their messages reach them by sync), waits
   * for the notifications being sent and closes the providers.
   */
  async close(): Promise<void> {
    this.#closed = true;
    this.#queue = [];
    this.#head = 0;
    await this.idle();
    await Promise.all(
      [...this.#providers.values()].map((p) =>
        p.close?.().catch((err: unknown) => this.#deps.log.warn({ err, provider: p.kind }, "closing push provider")),
      ),
    );
  }

  #queued(): number {
    return this.#queue.length - this.#head;
  }

  #take(): Job | undefined {
    if (this.#head >= this.#queue.length) return undefined;
    const job = this.#queue[this.#head];
    this.#head += 1;
    // Drop the consumed prefix when the queue empties, and now and then while it never does.
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    return job;
  }

  #pump(): void {
    while (this.#running < this.#deps.settings.concurrency) {
      const job = this.#take();
      if (!job) break;
      this.#running += 1;
      void this.#notify(job)
        .catch((err: unknown) =>
          this.#deps.log.warn(sampled({ err, uid: job.uid, convId: job.message.convId }), "push notification failed"),
        )
        .finally(() => {
          this.#running -= 1;
          this.#pump();
          if (this.#running === 0 && this.#queued() === 0) {
            const waiters = this.#idleWaiters;
            this.#idleWaiters = [];
            for (const resolve of waiters) resolve();
          }
        });
    }
  }

  /** uid's devices, from the cache while it keeps them. */
  async #devicesOf(uid: Uid): Promise<PushDeviceRecord[]> {
    const cached = this.#devices?.get(uid);
    if (cached) return cached;
    const listed = await this.#deps.devices.list(uid);
    this.#devices?.set(uid, listed);
    return listed;
  }

  async #notify({ message, uid, texts, online }: Job): Promise<void> {
    const { conversations, settings } = this.#deps;
    const reachable = (await this.#devicesOf(uid)).filter(
      (d) => this.#providers.has(d.provider) && !online?.includes(d.kind),
    );
    if (reachable.length === 0) return;
    const list = await conversations.list(uid, settings.conversationListMax);
    const here = list.find((c) => c.convId === message.convId);
    if (here?.settings.muted) return;
    // The conversation list's own unread rule: what was read, cleared or purged is not unread.
    const badge = list.reduce((sum, c) => sum + Math.max(0, c.lastSeq - Math.max(c.readSeq, c.clearedSeq)), 0);
    const notification: PushNotification = {
      ...(await texts()),
      convId: message.convId,
      seq: message.seq,
      collapseKey: message.convId,
      badge,
      ttlSeconds: settings.ttlSeconds,
    };
    await Promise.all(reachable.map((device) => this.#send(device, notification)));
  }

  async #send(device: PushDevice, notification: PushNotification): Promise<void> {
    const provider = this.#providers.get(device.provider);
    if (!provider) return;
    const outcome = await provider
      .send(device, notification)
      .catch((err: unknown) => ({ kind: "failed", reason: err instanceof Error ? err.message : String(err) }) as const);
    this.#deps.metrics?.pushes.inc({ provider: device.provider, outcome: outcome.kind });
    if (outcome.kind === "gone") {
      this.#devices?.delete(device.uid);
      await this.#deps.devices.drop(device.uid, device.deviceId, device.token);
      this.#deps.log.info(
        { uid: device.uid, deviceId: device.deviceId, provider: device.provider },
        "push device gone",
      );
    } else if (outcome.kind === "failed") {
      this.#deps.log.warn(
        sampled({ uid: device.uid, deviceId: device.deviceId, provider: device.provider, reason: outcome.reason }),
        "push notification not delivered",
      );
    }
  }

  /**
   * The title: the sender's name, or in a group the group's; the body: the preview (in a group
   * after the sender's name) or the neutral text. At most two reads, once per message.
   */
  async #textsOf(message: ChatMessage): Promise<{ title: string; body: string }> {
    const { showPreview, previewMaxChars } = this.#deps.settings;
    const sender = (await this.#deps.users.byUid(message.sender as Uid).catch(() => null))?.name ?? "shardchat";
    const groupId = groupIdOfConv(message.convId);
    const group =
      groupId !== undefined && this.#deps.groups ? await this.#deps.groups.get(groupId).catch(() => null) : null;
    const content = showPreview ? previewOf(message) : undefined;
    if (content === undefined) return { title: group?.name ?? sender, body: NEUTRAL_BODY };
    if (!group) return { title: sender, body: cut(content, previewMaxChars) };
    return { title: group.name, body: cut(`${sender}: ${content}`, previewMaxChars) };
  }
}

/** What a message shows in a preview: its text, a file's name, "voice message"; undefined for custom content. */
export function previewOf(message: Pick<ChatMessage, "kind" | "text" | "file">): string | undefined {
  if (message.kind === MessageKind.FILE && message.file) return `📎 ${message.file.name}`;
  if (message.kind === MessageKind.AUDIO) return "🎤 Voice message";
  if (message.kind === MessageKind.TEXT && message.text !== "") return message.text;
  return undefined;
}

/** At most max characters (code points), the last an ellipsis when cut. */
function cut(text: string, max: number): string {
  const chars = Array.from(text);
  return chars.length <= max ? text : `${chars.slice(0, Math.max(0, max - 1)).join("")}…`;
}
