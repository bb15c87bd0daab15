import type { BotRecipients } from "../bots/directory.js";
import { BOT_MESSAGE_EVENT, botDeliveryMark, botEventBody, botEventId, senderOf } from "../bots/event.js";
import type { Config } from "../config/settings.js";
import type { Logger } from "../log/logger.js";
import { sampled } from "../log/logger.js";
import type { Metrics } from "../metrics/metrics.js";
import type { JobLocks } from "../routing/ports.js";
import type { OutboxEvent, WebhookOutboxStore } from "../storage/ports.js";
import { AFTER_SEND_EVENT } from "../storage/webhook-outbox.js";
import type { EndpointTable } from "./endpoints.js";
import type { WebhookSender } from "./sender.js";

export type DispatchSettings = Pick<
  Config,
  | "WEBHOOK_TIMEOUT_MS"
  | "WEBHOOK_MAX_ATTEMPTS"
  | "WEBHOOK_RETRY_BASE_MS"
  | "WEBHOOK_RETRY_MAX_MS"
  | "WEBHOOK_BATCH"
  | "WEBHOOK_POLL_MS"
  | "WEBHOOK_LEASE_MS"
>;

export type DispatchMetrics = Pick<Metrics, "webhookDelivered" | "webhookFailed" | "webhookDead" | "webhookLagSeconds">;

export interface WebhookDispatcherOptions {
  outbox: WebhookOutboxStore;
  endpoints: EndpointTable;
  sender: WebhookSender;
  settings: DispatchSettings;
  /**
   * Who dispatches an instance: every chat node process runs a dispatcher, and the one holding
   * the instance's lease sends its rows. Absent: this one always does (a process alone, tests).
   */
  locks?: JobLocks;
  /**
   * Bots (BOTS_ENABLED, issue 18): each message.after_send row also goes, as a bot.message
   * call, to the bots among its conversation's participants. Absent: no bot is asked.
   */
  bots?: BotRecipients;
  log: Logger;
  metrics?: DispatchMetrics;
  /** Milliseconds since the epoch (tests move it). */
  now?: () => number;
}

/** What one pass over one instance did. */
export interface DispatchReport {
  instance: string;
  /** Whether this dispatcher held the instance's lease. */
  ran: boolean;
  scanned: number;
  delivered: number;
  failed: number;
  dead: number;
}

/**
 * Sends the webhook outbox (issue 18). Per database instance, one dispatcher at a time holds a
 * lease (JobLocks, `webhooks:<instance>`) and keeps it while it lives, renewing it as it works;
 * a dispatcher whose process died loses it after WEBHOOK_LEASE_MS and another process's takes
 * the instance over, finding every row not yet delivered where it was. Unlike the retention
 * purge's LeasedInstanceJob, whose lease spaces passes, the lease here is held across passes:
 * a fresh event then waits one WEBHOOK_POLL_MS, not a lease.
 *
 * A pass reads up to WEBHOOK_BATCH rows in primary-key order from where the last one stopped
 * (wrapping at the end), groups them into lanes (a conversation's messages; a key's other
 * events) and sends each lane's rows in order, the lanes side by side. A row goes to every
 * endpoint subscribed to its type and is deleted once each answered 2xx (the pass's delivered
 * rows in one statement at its end); a failure keeps it
 * (noting the endpoints that took it), and its lane waits until its next attempt, backing off
 * exponentially; after WEBHOOK_MAX_ATTEMPTS it is marked dead (kept, logged, counted) and the
 * lane goes on. Delivery is therefore at least once: a process that dies after a POST and before
 * the delete sends that row again, with the same webhook-id.
 *
 * With bots, a message's row has more targets: each bot among its participants (its sender
 * aside) gets its own bot.message call at the bot's URL, noted in deliveredTo as "bot:<uid>"
 * once it answered 2xx; the row goes once every endpoint and every bot took it, under the same
 * retry, order and dead rules as the endpoints (a failing bot holds its conversations' later
 * rows, as a failing endpoint does, until the row is dead).
 */
export class WebhookDispatcher {
  readonly #o: WebhookDispatcherOptions;
  readonly #now: () => number;
  readonly #tokens = new Map<string, string>();
  readonly #cursors = new Map<string, string>();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> | undefined;
  #stopped = false;

  constructor(options: WebhookDispatcherOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /** Passes every WEBHOOK_POLL_MS from now on (at once again after a full batch). */
  start(): void {
    this.#stopped = false;
    this.#schedule(0);
  }

  /** No pass starts after this; resolves once the one under way ends its current rows. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running?.catch(() => undefined);
  }

  /** One pass over every instance, side by side. */
  async runOnce(): Promise<DispatchReport[]> {
    const pass = Promise.all(this.#o.outbox.instances().map((instance) => this.#passOver(instance)));
    this.#running = pass;
    try {
      return await pass;
    } finally {
      if (this.#running === pass) this.#running = undefined;
    }
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.runOnce()
        .then((reports) => {
          const full = reports.some((r) => r.scanned >= this.#o.settings.WEBHOOK_BATCH && r.delivered > 0);
          this.#schedule(full ? 0 : this.#o.settings.WEBHOOK_POLL_MS);
        })
        .catch((err: unknown) => {
          this.#o.log.warn({ err }, "webhook pass failed");
          this.#schedule(this.#o.settings.WEBHOOK_POLL_MS);
        });
    }, delayMs);
    this.#timer.unref();
  }

  /** Takes or keeps the instance's lease; whether this dispatcher holds it now. */
  async #hold(instance: string): Promise<boolean> {
    const locks = this.#o.locks;
    if (!locks) return true;
    const key = `webhooks:${instance}`;
    const ttl = this.#o.settings.WEBHOOK_LEASE_MS;
    const token = this.#tokens.get(instance);
    if (token !== undefined) {
      if (await locks.renew(key, token, ttl)) return true;
      this.#tokens.delete(instance);
      this.#o.log.info({ instance }, "webhook lease lost");
    }
    const taken = await locks.acquire(key, ttl);
    if (taken === null) return false;
    this.#tokens.set(instance, taken);
    this.#o.log.info({ instance }, "webhook lease taken: dispatching this instance");
    return true;
  }

  async #passOver(instance: string): Promise<DispatchReport> {
    const report: DispatchReport = { instance, ran: false, scanned: 0, delivered: 0, failed: 0, dead: 0 };
    try {
      if (!(await this.#hold(instance))) return report;
      report.ran = true;
      const held = this.#keepLease(instance);
      try {
        await this.#dispatch(instance, report, held);
      } finally {
        held.stop();
      }
    } catch (err) {
      this.#o.log.warn({ err, instance }, "webhook pass over an instance failed; the next pass goes on");
    }
    return report;
  }

  /** Renews the lease while a pass runs (its calls may take longer than the lease). */
  #keepLease(instance: string): { readonly lost: boolean; stop(): void } {
    const locks = this.#o.locks;
    const ttl = this.#o.settings.WEBHOOK_LEASE_MS;
    let lost = false;
    const timer = setInterval(
      () => {
        const token = this.#tokens.get(instance);
        if (!locks || token === undefined) return;
        void locks
          .renew(`webhooks:${instance}`, token, ttl)
          .then((ok) => {
            if (!ok) lost = true;
          })
          .catch(() => undefined);
      },
      Math.max(50, Math.floor(ttl / 3)),
    );
    timer.unref();
    return {
      get lost() {
        return lost;
      },
      stop: () => clearInterval(timer),
    };
  }

  async #dispatch(instance: string, report: DispatchReport, held: { readonly lost: boolean }): Promise<void> {
    const { outbox, settings } = this.#o;
    const after = this.#cursors.get(instance) ?? "";
    const rows = await outbox.scan(instance, after, settings.WEBHOOK_BATCH);
    report.scanned = rows.length;
    // A short page reached the end: the next pass starts over from the first key.
    this.#cursors.set(instance, rows.length < settings.WEBHOOK_BATCH ? "" : (rows.at(-1)?.placeKey ?? ""));
    const now = this.#now();
    const oldest = rows.reduce((min, r) => Math.min(min, r.createdAt), now);
    this.#o.metrics?.webhookLagSeconds.set({ instance }, (now - oldest) / 1000);
    const lanes = new Map<string, OutboxEvent[]>();
    for (const row of rows) {
      const lane = `${row.placeKey}\u0000${row.lane}`;
      const list = lanes.get(lane);
      if (list) list.push(row);
      else lanes.set(lane, [row]);
    }
    const delivered: OutboxEvent[] = [];
    try {
      await Promise.all(
        [...lanes.values()].map(async (lane) => {
          for (const row of lane) {
            if (this.#stopped || held.lost) return;
            // The lane's first row waits for its retry: so do the rows after it.
            if (row.nextAt > this.#now()) return;
            const outcome = await this.#deliver(instance, row, report);
            if (outcome === "delivered") delivered.push(row);
            if (outcome === "wait") return;
          }
        }),
      );
    } finally {
      // One delete for the pass, not a commit per event. A process that dies before it sends
      // these rows again, with the same webhook-id (at least once, as before).
      await outbox.remove(instance, delivered);
    }
  }

  /** The calls a row still needs: its type's endpoints, and for a message the bots that should see it. */
  async #targets(row: OutboxEvent): Promise<Target[]> {
    const { endpoints, bots } = this.#o;
    const pending = (mark: string) => !row.deliveredTo.includes(mark);
    const targets: Target[] = [];
    const urls = endpoints.urlsFor(row.type).filter(pending);
    if (urls.length > 0) {
      const body = eventBody(row);
      for (const url of urls) targets.push({ mark: url, url, id: row.eventId, body, type: row.type });
    }
    if (bots && row.type === AFTER_SEND_EVENT) {
      for (const bot of await bots.of(row.placeKey, senderOf(row.payloadJson))) {
        const mark = botDeliveryMark(bot.uid);
        if (!pending(mark)) continue;
        const id = botEventId(bot.uid, row.eventId);
        targets.push({ mark, url: bot.webhookUrl, id, body: botEventBody(bot.uid, row), type: BOT_MESSAGE_EVENT });
      }
    }
    return targets;
  }

  /**
   * Sends one row to its endpoints (and bots): "delivered" (to be removed with the pass's
   * others), "dead" (given up; the lane goes on) or "wait" (the lane waits for its retry).
   */
  async #deliver(instance: string, row: OutboxEvent, report: DispatchReport): Promise<"delivered" | "dead" | "wait"> {
    const { outbox, sender, settings, metrics, log } = this.#o;
    let targets: Target[];
    try {
      targets = await this.#targets(row);
    } catch (err) {
      // The bots could not be read: no attempt is counted, the lane waits for the next pass.
      log.warn(sampled({ err, eventId: row.eventId }), "webhook row's bots could not be read; tried again next pass");
      return "wait";
    }
    if (targets.length > 0) {
      const answers = await Promise.all(
        targets.map((t) => sender.post({ url: t.url, id: t.id, body: t.body, timeoutMs: settings.WEBHOOK_TIMEOUT_MS })),
      );
      const took = targets.filter((_, i) => answers[i]?.ok);
      for (const t of took) metrics?.webhookDelivered.inc({ type: t.type });
      const errors = answers.flatMap((a, i) => (a.ok ? [] : [`${targets[i]?.url}: ${a.error}`]));
      if (errors.length > 0) {
        const attempts = row.attempts + 1;
        const dead = attempts >= settings.WEBHOOK_MAX_ATTEMPTS;
        const error = errors.join("; ");
        metrics?.webhookFailed.inc({ type: row.type }, errors.length);
        await outbox.retry(instance, row, {
          attempts,
          nextAt: this.#now() + backoffMs(attempts, settings),
          deliveredTo: [...row.deliveredTo, ...took.map((t) => t.mark)],
          dead,
          error,
        });
        report.failed++;
        if (!dead) return "wait";
        report.dead++;
        metrics?.webhookDead.inc({ type: row.type });
        log.warn(
          sampled({ eventId: row.eventId, type: row.type, attempts, error }),
          "webhook event dead: no more attempts",
        );
        return "dead";
      }
    }
    // Every endpoint took it (or none listens to its type any more).
    report.delivered++;
    return "delivered";
  }
}

/** One call a row needs: where, its id and body, and what deliveredTo notes once it is taken. */
interface Target {
  mark: string;
  url: string;
  id: string;
  body: string;
  type: string;
}

/** The JSON a receiver gets: the event's type, id, time (ISO 8601) and data. */
export function eventBody(row: Pick<OutboxEvent, "type" | "eventId" | "createdAt" | "payloadJson">): string {
  return `{"type":${JSON.stringify(row.type)},"id":${JSON.stringify(row.eventId)},"timestamp":${JSON.stringify(
    new Date(row.createdAt).toISOString(),
  )},"data":${row.payloadJson}}`;
}

/** Exponential backoff after the attempts so far, capped, with jitter (half to all of it). */
export function backoffMs(
  attempts: number,
  settings: Pick<Config, "WEBHOOK_RETRY_BASE_MS" | "WEBHOOK_RETRY_MAX_MS">,
  random: () => number = Math.random,
): number {
  const full = Math.min(settings.WEBHOOK_RETRY_MAX_MS, settings.WEBHOOK_RETRY_BASE_MS * 2 ** Math.max(0, attempts - 1));
  return Math.round(full * (0.5 + random() / 2));
}
