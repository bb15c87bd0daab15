/** Markdown tables and an SVG chart (latency against offered rate) of load reports. */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ChatLoadReport } from "./chat.js";
import type { GroupLoadReport } from "./group.js";

export function markdownTable(header: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

export function chatTable(runs: { system: string; report: ChatLoadReport }[]): string {
  return markdownTable(
    [
      "system",
      "offered msg/s",
      "acked msg/s",
      "delivered msg/s",
      "p50 ms",
      "p90 ms",
      "p99 ms",
      "p99.9 ms",
      "max ms",
      "ack p99 ms",
      "check",
    ],
    runs.map(({ system, report: r }) => [
      system,
      r.offeredRate,
      r.ackedPerSecond,
      r.deliveredPerSecond,
      r.latencyMs.p50,
      r.latencyMs.p90,
      r.latencyMs.p99,
      r.latencyMs.p999,
      r.latencyMs.max,
      r.ackLatencyMs.p99,
      checkCell(r),
    ]),
  );
}

export function groupTable(runs: { system: string; report: GroupLoadReport }[]): string {
  return markdownTable(
    [
      "system",
      "members",
      "nodes",
      "posts/s",
      "deliveries/s",
      "p50 ms",
      "p90 ms",
      "p99 ms",
      "p99.9 ms",
      "max ms",
      "check",
    ],
    runs.map(({ system, report: r }) => [
      system,
      r.members,
      r.nodes,
      r.offeredRate,
      r.deliveriesPerSecond,
      r.latencyMs.p50,
      r.latencyMs.p90,
      r.latencyMs.p99,
      r.latencyMs.p999,
      r.latencyMs.max,
      checkCell(r),
    ]),
  );
}

/**
 * Where the time of a 1:1 message goes: send → stored ack (the sender's request answered), then
 * stored ack → the peer's receipt (the push), beside the whole send → receipt.
 */
export function latencyBreakdownTable(runs: { system: string; report: ChatLoadReport }[]): string {
  return markdownTable(
    [
      "system",
      "offered msg/s",
      "send → ack p50 ms",
      "send → ack p99 ms",
      "ack → push p50 ms",
      "ack → push p99 ms",
      "push before ack",
      "send → push p50 ms",
      "send → push p99 ms",
    ],
    runs.map(({ system, report: r }) => [
      system,
      r.offeredRate,
      r.ackLatencyMs.p50,
      r.ackLatencyMs.p99,
      r.ackToPushMs.p50,
      r.ackToPushMs.p99,
      `${r.pushBeforeAck} of ${r.ackToPushMs.count}`,
      r.latencyMs.p50,
      r.latencyMs.p99,
    ]),
  );
}

/**
 * Whether a group's fan-out keeps up: of the deliveries the posts made ask for, at least 90 %
 * arrived while posting went on, and the rest within 2 s of the stop (a system falling behind
 * piles up a backlog that takes long to drain).
 */
export function keepsUp(r: GroupLoadReport): { share: number; ok: boolean } {
  const share = r.deliveriesOwed > 0 ? r.deliveredWhileSending / r.deliveriesOwed : 0;
  return { share, ok: share >= 0.9 && r.drainSeconds <= 2 };
}

export function groupKeepUpTable(runs: { system: string; report: GroupLoadReport }[]): string {
  return markdownTable(
    [
      "system",
      "members",
      "posts/s",
      "offered deliveries/s",
      "delivered/s while posting",
      "posts made",
      "delivered while posting, of those owed",
      "drain after the last post s",
      "keeps up",
      "p50 ms",
      "p99 ms",
      "check",
    ],
    runs.map(({ system, report: r }) => {
      const k = keepsUp(r);
      return [
        system,
        r.members,
        r.offeredRate,
        r.offeredDeliveriesPerSecond,
        r.deliveredWhileSendingPerSecond,
        r.sent,
        `${r.deliveredWhileSending} of ${r.deliveriesOwed} (${Math.round(k.share * 1000) / 10} %)`,
        r.drainSeconds,
        k.ok ? "yes" : "no",
        r.latencyMs.p50,
        r.latencyMs.p99,
        checkCell(r),
      ];
    }),
  );
}

export function checkCell(r: { check: ChatLoadReport["check"] }): string {
  const c = r.check;
  return c.ok
    ? `ok (${c.received} once, in order)`
    : `FAILED: ${c.lost} not received by the end of the drain, ${c.duplicates} duplicated, ${c.outOfOrder} out of order${c.examples.length > 0 ? ` (${c.examples.join("; ")})` : ""}`;
}

export interface Series {
  name: string;
  /** [offered msg/s, latency ms] */
  points: [number, number][];
}

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];

/** A line chart, log-scaled latency against offered rate; hand-written SVG, no dependency. */
export function latencyChart(title: string, series: Series[]): string {
  const W = 720;
  const H = 420;
  const m = { l: 70, r: 220, t: 40, b: 50 };
  const all = series.flatMap((s) => s.points);
  const maxX = Math.max(1, ...all.map((p) => p[0])) * 1.05;
  const ys = all.map((p) => Math.max(0.1, p[1]));
  const lo = Math.floor(Math.log10(Math.min(1, ...ys)));
  const hi = Math.ceil(Math.log10(Math.max(10, ...ys)));
  const x = (v: number) => m.l + (v / maxX) * (W - m.l - m.r);
  const y = (v: number) => H - m.b - ((Math.log10(Math.max(0.1, v)) - lo) / (hi - lo)) * (H - m.t - m.b);
  const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${m.l}" y="22" font-size="14">${esc(title)}</text>`,
    `<line x1="${m.l}" y1="${H - m.b}" x2="${W - m.r}" y2="${H - m.b}" stroke="black"/>`,
    `<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${H - m.b}" stroke="black"/>`,
    `<text x="${(m.l + W - m.r) / 2}" y="${H - 12}" text-anchor="middle">offered rate (msg/s)</text>`,
    `<text transform="translate(18 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">latency (ms, log)</text>`,
  ];
  for (let e = lo; e <= hi; e++) {
    const v = 10 ** e;
    parts.push(
      `<line x1="${m.l}" y1="${y(v)}" x2="${W - m.r}" y2="${y(v)}" stroke="#ddd"/>`,
      `<text x="${m.l - 6}" y="${y(v) + 4}" text-anchor="end">${v}</text>`,
    );
  }
  for (let i = 0; i <= 5; i++) {
    const v = Math.round((maxX / 5) * i);
    parts.push(`<text x="${x(v)}" y="${H - m.b + 16}" text-anchor="middle">${v}</text>`);
  }
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = [...s.points].sort((a, b) => a[0] - b[0]);
    parts.push(
      `<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ")}"/>`,
      ...pts.map((p) => `<circle cx="${x(p[0]).toFixed(1)}" cy="${y(p[1]).toFixed(1)}" r="3" fill="${color}"/>`),
      `<rect x="${W - m.r + 12}" y="${m.t + i * 20 - 9}" width="12" height="3" fill="${color}"/>`,
      `<text x="${W - m.r + 30}" y="${m.t + i * 20 - 4}">${esc(s.name)}</text>`,
    );
  });
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}

/**
 * Writes a benchmark's report as `<dir>/<prefix><time>.md` and its figures as `.json` (the
 * directory is made if missing); answers the .md path.
 */
export function writeResults(dir: string, prefix: string, markdown: string, figures: unknown): string {
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  mkdirSync(dir, { recursive: true });
  const base = join(dir, `${prefix}${stamp}`);
  writeFileSync(`${base}.md`, markdown);
  writeFileSync(`${base}.json`, `${JSON.stringify(figures, null, 2)}\n`);
  return `${base}.md`;
}

/** The p-quantile (0..1) of values, nearest rank below, rounded to a whole number; 0 for none. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))] ?? 0);
}
