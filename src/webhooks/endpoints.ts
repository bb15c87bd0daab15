import { AFTER_SEND_EVENT } from "../storage/webhook-outbox.js";

/**
 * The events a webhook endpoint may subscribe to (README "Webhooks" shows each one's data).
 * message.before_send is not among them: it is a call the send waits for
 * (WEBHOOK_BEFORE_SEND_URL), not an event.
 */
export const WEBHOOK_EVENTS = [
  AFTER_SEND_EVENT,
  "message.offline",
  "user.online",
  "user.offline",
  "friend.applied",
  "friend.accepted",
  "friend.declined",
  "friend.removed",
  "group.created",
  "group.members_added",
  "group.member_left",
  "group.member_kicked",
  "group.renamed",
  "group.role_changed",
  "group.member_muted",
  "group.muted_all",
  "group.announcement",
  "group.dissolved",
  "group.join_approval",
  "group.retention",
] as const;

export type WebhookEventType = (typeof WEBHOOK_EVENTS)[number];

const KNOWN: ReadonlySet<string> = new Set(WEBHOOK_EVENTS);

/** Which endpoints each event type goes to (WEBHOOK_ENDPOINTS, parsed once at start). */
export interface EndpointTable {
  /** The endpoints subscribed to type, each once, in the order configured. */
  urlsFor(type: string): readonly string[];
  subscribed(type: string): boolean;
  /** Whether any endpoint is configured at all. */
  readonly any: boolean;
}

/**
 * Parses WEBHOOK_ENDPOINTS: rules separated by ";", each `<events>=<urls>`: events a comma list
 * of event types, `group.*` for every event of a family, or `*` for all; urls one or more
 * http(s) URLs separated by spaces. Example:
 * `message.after_send,user.online=http://a/hook http://b/hook; group.*=http://c/hook`.
 * Throws an Error naming the first problem; empty (or only spaces) means no endpoint.
 */
export function parseEndpoints(value: string): EndpointTable {
  const table = new Map<string, string[]>();
  const add = (type: string, url: string) => {
    const urls = table.get(type) ?? [];
    if (!urls.includes(url)) urls.push(url);
    table.set(type, urls);
  };
  for (const rule of value.split(";").map((r) => r.trim())) {
    if (rule === "") continue;
    const at = rule.indexOf("=");
    if (at <= 0) throw new Error(`"${rule}" is not <events>=<urls>`);
    const types = rule
      .slice(0, at)
      .split(",")
      .map((t) => t.trim());
    const urls = rule
      .slice(at + 1)
      .split(/\s+/)
      .filter((u) => u !== "");
    if (urls.length === 0) throw new Error(`"${rule}" names no URL`);
    for (const url of urls) checkUrl(url);
    for (const pattern of types) {
      const matched = matching(pattern);
      if (matched.length === 0) throw new Error(`"${pattern}" is no webhook event (${WEBHOOK_EVENTS.join(", ")})`);
      for (const type of matched) for (const url of urls) add(type, url);
    }
  }
  return {
    urlsFor: (type) => table.get(type) ?? [],
    subscribed: (type) => (table.get(type)?.length ?? 0) > 0,
    any: table.size > 0,
  };
}

/** The event types a pattern names: one type, "family.*", or "*". */
function matching(pattern: string): string[] {
  if (pattern === "*") return [...WEBHOOK_EVENTS];
  if (pattern.endsWith(".*")) {
    const family = pattern.slice(0, -1);
    return WEBHOOK_EVENTS.filter((t) => t.startsWith(family));
  }
  return KNOWN.has(pattern) ? [pattern] : [];
}

/** An absolute http(s) URL, else an Error naming it. */
export function checkUrl(url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`"${url}" is not a URL`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new Error(`"${url}" is not http(s)`);
}
