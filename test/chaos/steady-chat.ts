import { type ChatClient, GateClient, openChat } from "@shardchat/sdk";
import type { ChatMessage } from "../../packages/protocol/src/wire.js";
import { AppError, ErrorCode } from "../../src/errors.js";

/**
 * A steady 1:1 chat load for fault injection, written on the SDK as a careful client would be:
 * a send that fails is retried with the same clientMsgId (after reconnecting through gate if the
 * connection died) until it is acked, and a reconnect syncs what it missed, skipping what it
 * already had by seq. The text carries a number per conversation, so the end-of-run check needs
 * nothing from the server: every acked number must have arrived exactly once.
 *
 * (The load tool's chat-1to1 scenario, bench/load, drives connections that never reconnect and
 * counts unacked sends as lost, which is right for a benchmark and wrong under faults.)
 */
export interface ChatUser {
  name: string;
  password: string;
  uid: string;
}

export interface SteadySummary {
  pairs: number;
  ratePerSender: number;
  acked: number;
  /** Sends that failed and were retried (same clientMsgId) until acked. */
  retries: number;
  received: number;
  /** Acked messages that never arrived. */
  lost: number;
  /** A few of them, "sender>recipient:n", to look up in the logs. */
  lostSample: string[];
  /** Messages the application saw twice. */
  duplicates: number;
  reconnects: number;
  /** For each sender, when (ms since the epoch) each send started and was acked. */
  acks: Map<string, { startedAt: number; ackedAt: number }[]>;
}

interface Member {
  user: ChatUser;
  client: ChatClient | undefined;
  connecting: Promise<ChatClient> | undefined;
  cursors: Map<string, number>;
  shown: Set<string>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class SteadyChat {
  private readonly gate: GateClient;
  private readonly members = new Map<string, Member>();
  /** conv "from>to" → numbers received */
  private readonly received = new Map<string, Set<number>>();
  /** conv "from>to" → numbers acked */
  private readonly acked = new Map<string, number[]>();
  private readonly acks = new Map<string, { startedAt: number; ackedAt: number }[]>();
  private duplicates = 0;
  private retries = 0;
  private reconnects = 0;
  private stopping = false;
  private closed = false;
  private loops: Promise<void>[] = [];

  constructor(
    gateUrl: string,
    private readonly pairs: [ChatUser, ChatUser][],
    private readonly ratePerSender: number,
    private readonly runId: string,
  ) {
    this.gate = new GateClient(gateUrl);
    for (const u of pairs.flat()) {
      this.members.set(u.uid, {
        user: u,
        client: undefined,
        connecting: undefined,
        cursors: new Map(),
        shown: new Set(),
      });
    }
  }

  /** Connects everyone, then starts both directions of every pair. */
  async start(): Promise<void> {
    await Promise.all([...this.members.values()].map((m) => this.connected(m)));
    for (const [a, b] of this.pairs) {
      this.loops.push(this.senderLoop(a, b), this.senderLoop(b, a));
    }
  }

  /** Sends started at or after `since` that were acked, per sender: the first ack time of each. */
  firstAckSince(since: number): Map<string, number | undefined> {
    const out = new Map<string, number | undefined>();
    for (const [a, b] of this.pairs) {
      for (const [from, to] of [
        [a, b],
        [b, a],
      ] as const) {
        const key = `${from.uid}>${to.uid}`;
        out.set(key, this.acks.get(key)?.find((x) => x.startedAt >= since)?.ackedAt);
      }
    }
    return out;
  }

  /** Stops sending, waits for the last sends, syncs every member and checks delivery. */
  async stop(drainMs = 15_000): Promise<SteadySummary> {
    this.stopping = true;
    await Promise.all(this.loops);
    const deadline = Date.now() + drainMs;
    // Pushes in flight land first; then a sync per member collects anything they missed.
    while (Date.now() < deadline && this.missing() > 0) await sleep(100);
    for (const m of this.members.values()) {
      while (this.missingFor(m.user.uid) > 0 && Date.now() < deadline) {
        try {
          const client = await this.connected(m);
          await this.syncInto(m, client);
          if (this.missingFor(m.user.uid) > 0) await sleep(200);
        } catch {
          await sleep(200);
        }
      }
    }
    this.closed = true;
    await Promise.all([...this.members.values()].map((m) => m.client?.close()));
    let acked = 0;
    let received = 0;
    for (const list of this.acked.values()) acked += list.length;
    for (const set of this.received.values()) received += set.size;
    return {
      pairs: this.pairs.length,
      ratePerSender: this.ratePerSender,
      acked,
      retries: this.retries,
      received,
      lost: this.missing(),
      lostSample: this.missingSample(10),
      duplicates: this.duplicates,
      reconnects: this.reconnects,
      acks: this.acks,
    };
  }

  private missing(): number {
    let lost = 0;
    for (const [conv, ns] of this.acked) {
      const got = this.received.get(conv);
      for (const n of ns) if (!got?.has(n)) lost++;
    }
    return lost;
  }

  private missingSample(max: number): string[] {
    const out: string[] = [];
    for (const [conv, ns] of this.acked) {
      const got = this.received.get(conv);
      for (const n of ns) if (!got?.has(n) && out.length < max) out.push(`${conv}:${n}`);
    }
    return out;
  }

  private missingFor(uid: string): number {
    let lost = 0;
    for (const [conv, ns] of this.acked) {
      if (!conv.endsWith(`>${uid}`)) continue;
      const got = this.received.get(conv);
      for (const n of ns) if (!got?.has(n)) lost++;
    }
    return lost;
  }

  private async senderLoop(from: ChatUser, to: ChatUser): Promise<void> {
    const conv = `${from.uid}>${to.uid}`;
    const member = this.members.get(from.uid) as Member;
    const every = 1000 / this.ratePerSender;
    let next = Date.now();
    for (let n = 1; !this.stopping; n++) {
      next += every;
      const wait = next - Date.now();
      if (wait > 0) await sleep(wait);
      else next = Date.now();
      const startedAt = Date.now();
      // Unique per conversation is enough: the node deduplicates on (conversation, clientMsgId).
      const clientMsgId = `${this.runId}:${n}`;
      const text = `${n}|${this.runId}`;
      for (let attempt = 0; ; attempt++) {
        if (attempt > 0) {
          this.retries++;
          if (this.stopping) return;
          await sleep(100);
        }
        try {
          const client = await this.connected(member);
          await client.sendText(to.uid, text, clientMsgId);
          const ackedAt = Date.now();
          this.push(this.acked, conv, n);
          this.push(this.acks, conv, { startedAt, ackedAt });
          break;
        } catch (err) {
          if (!(err instanceof AppError) && !(err instanceof Error)) throw err;
          // RATE_LIMITED or a dependency failing over: the same clientMsgId again, after a pause.
          if (err instanceof AppError && err.code === ErrorCode.INVALID_ARGUMENT) throw err;
        }
      }
    }
  }

  private push<T>(map: Map<string, T[]>, key: string, value: T): void {
    const list = map.get(key);
    if (list) list.push(value);
    else map.set(key, [value]);
  }

  /** The member's live client, reconnecting (login through gate, then sync) when it died. */
  private connected(m: Member): Promise<ChatClient> {
    if (m.client && !m.client.closed) return Promise.resolve(m.client);
    m.connecting ??= (async () => {
      for (let attempt = 0; ; attempt++) {
        if (this.closed) throw new Error("steady chat closed");
        try {
          const login = await this.gate.login(m.user.name, m.user.password);
          const client = await openChat(login, "tcp", { seen: m.cursors, requestTimeoutMs: 4000 });
          client.on("message", (msg) => this.onMessage(m, msg));
          client.on("close", () => {
            m.cursors = client.cursors();
          });
          if (m.client) this.reconnects++;
          m.client = client;
          await this.syncInto(m, client);
          return client;
        } catch {
          await sleep(Math.min(1000, 100 * (attempt + 1)));
        }
      }
    })().finally(() => {
      m.connecting = undefined;
    });
    return m.connecting;
  }

  /** What the member missed while away. */
  private async syncInto(m: Member, client: ChatClient): Promise<void> {
    for (const msg of await client.syncAll()) this.onMessage(m, msg);
    m.cursors = client.cursors();
  }

  /**
   * The application's view: a message id it already shows is not shown again (a push that
   * raced a sync), so a duplicate here is the same text stored twice, under two ids.
   */
  private onMessage(m: Member, msg: ChatMessage): void {
    if (msg.sender === m.user.uid || m.shown.has(msg.msgId)) return;
    m.shown.add(msg.msgId);
    const [n, runId] = msg.text.split("|");
    if (runId !== this.runId) return;
    const conv = `${msg.sender}>${m.user.uid}`;
    let set = this.received.get(conv);
    if (!set) {
      set = new Set();
      this.received.set(conv, set);
    }
    const num = Number(n);
    if (set.has(num)) this.duplicates++;
    else set.add(num);
  }
}
