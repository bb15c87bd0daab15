/**
 * The exactly-once, in-order check every load run makes. A sender numbers its messages
 * 1, 2, 3... per conversation (sender → recipient) and the number travels in the text, so the
 * check holds end to end whatever the server does with its own ids. A number seen twice is a
 * duplicate; a number ahead of the next expected one is out of order (the skipped ones stay
 * missing until they arrive, late, or the run ends and they count as lost).
 */
export interface CheckSummary {
  conversations: number;
  sent: number;
  received: number;
  duplicates: number;
  outOfOrder: number;
  lost: number;
  ok: boolean;
  /** The first few faults, as "<conversation> ..." lines, to start looking from. */
  examples: string[];
}

/** Faults kept as examples per checker. */
const MAX_EXAMPLES = 5;

interface ConversationState {
  sent: number;
  next: number;
  received: number;
  missing: Set<number> | undefined;
}

export class DeliveryChecker {
  private readonly conversations = new Map<string, ConversationState>();
  private duplicates = 0;
  private outOfOrder = 0;
  private readonly examples: string[] = [];

  private example(line: string): void {
    if (this.examples.length < MAX_EXAMPLES) this.examples.push(line);
  }

  private state(conv: string): ConversationState {
    let s = this.conversations.get(conv);
    if (!s) {
      s = { sent: 0, next: 1, received: 0, missing: undefined };
      this.conversations.set(conv, s);
    }
    return s;
  }

  /** The next number for a message on this conversation (call once per message sent). */
  nextToSend(conv: string): number {
    const s = this.state(conv);
    s.sent += 1;
    return s.sent;
  }

  /** The sender is elsewhere (another worker): it says at the end how many it sent here. */
  expectSent(conv: string, count: number): void {
    const s = this.state(conv);
    s.sent = Math.max(s.sent, count);
  }

  received(conv: string, n: number): void {
    const s = this.state(conv);
    if (n === s.next) {
      s.next += 1;
      s.received += 1;
    } else if (n > s.next) {
      this.example(`${conv}: #${n} arrived while #${s.next} was expected`);
      s.missing ??= new Set();
      for (let k = s.next; k < n; k++) s.missing.add(k);
      s.next = n + 1;
      s.received += 1;
      this.outOfOrder += 1;
    } else if (s.missing?.delete(n)) {
      this.example(`${conv}: #${n} arrived late`);
      s.received += 1;
      this.outOfOrder += 1;
    } else {
      this.example(`${conv}: #${n} arrived again`);
      this.duplicates += 1;
    }
  }

  /** Totals so far; `lost` counts every sent message not received yet (call after draining). */
  summary(): CheckSummary {
    let sent = 0;
    let received = 0;
    let lost = 0;
    const examples = [...this.examples];
    for (const [conv, s] of this.conversations) {
      sent += s.sent;
      received += s.received;
      const missing = (s.missing?.size ?? 0) + Math.max(0, s.sent - (s.next - 1));
      lost += missing;
      if (missing > 0 && examples.length < MAX_EXAMPLES) {
        const first = Math.min(...(s.missing ?? []), s.next <= s.sent ? s.next : Number.POSITIVE_INFINITY);
        examples.push(`${conv}: ${missing} of ${s.sent} not received, the first #${first}`);
      }
    }
    return summarize({
      conversations: this.conversations.size,
      sent,
      received,
      duplicates: this.duplicates,
      outOfOrder: this.outOfOrder,
      lost,
      examples,
    });
  }

  /** Messages sent and not yet received (to wait for the tail of a run). */
  outstanding(): number {
    const s = this.summary();
    return s.sent - s.received;
  }
}

function summarize(s: Omit<CheckSummary, "ok">): CheckSummary {
  return { ...s, ok: s.duplicates === 0 && s.outOfOrder === 0 && s.lost === 0 };
}

/** Adds the summaries of several workers (conversations never span workers). */
export function mergeSummaries(parts: CheckSummary[]): CheckSummary {
  const sum = (k: keyof Omit<CheckSummary, "ok" | "examples">) => parts.reduce((acc, p) => acc + p[k], 0);
  return summarize({
    examples: parts.flatMap((p) => p.examples).slice(0, MAX_EXAMPLES),
    conversations: sum("conversations"),
    sent: sum("sent"),
    received: sum("received"),
    duplicates: sum("duplicates"),
    outOfOrder: sum("outOfOrder"),
    lost: sum("lost"),
  });
}

/**
 * The text of a load message: "<n>|<sent at, ms since the epoch with fractions>|" padded
 * with "x" to `size` characters, so every system under test carries the same bytes.
 */
export function encodeText(n: number, sentAtMs: number, size: number): string {
  const head = `${n}|${sentAtMs.toFixed(3)}|`;
  return head.length >= size ? head : head + "x".repeat(size - head.length);
}

export function decodeText(text: string): { n: number; sentAtMs: number } | undefined {
  const a = text.indexOf("|");
  const b = text.indexOf("|", a + 1);
  if (a < 1 || b < 0) return undefined;
  const n = Number(text.slice(0, a));
  const sentAtMs = Number(text.slice(a + 1, b));
  return Number.isInteger(n) && n > 0 && Number.isFinite(sentAtMs) ? { n, sentAtMs } : undefined;
}

/** A clock shared by every worker thread of the process (performance.now() is per thread). */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}
