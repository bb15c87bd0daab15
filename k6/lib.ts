/**
 * Shared by the k6 scripts: settings from -e, the users file, gate login, and the chat
 * protocol's JSON text frames over WebSocket (protobuf canonical JSON, see README "Protocol").
 */
import { check } from "k6";
import http from "k6/http";
import { Counter, Trend } from "k6/metrics";

export const GATE_URL = __ENV.GATE_URL ?? "http://127.0.0.1:8080";

export interface LoadUser {
  user: string;
  password: string;
  uid: string;
}

/** Made by `npm run load -- users --count N --file <file>` (see README, "k6"). */
export function loadUsers(): LoadUser[] {
  const file = __ENV.USERS_FILE ?? "./users.json";
  return (JSON.parse(open(file)) as { users: LoadUser[] }).users;
}

export interface LoginAnswer {
  error: number;
  uid: string;
  token: string;
  wsUrl: string;
}

export const loginDuration = new Trend("shardchat_login_ms", true);

export function login(u: LoadUser): LoginAnswer | undefined {
  const res = http.post(`${GATE_URL}/v1/login`, JSON.stringify({ user: u.user, password: u.password }), {
    headers: { "content-type": "application/json" },
    tags: { name: "login" },
  });
  loginDuration.add(res.timings.duration);
  const answer = res.status === 200 ? (res.json() as unknown as LoginAnswer) : undefined;
  return check(answer, { "login answers error 0": (a) => a?.error === 0 }) ? answer : undefined;
}

/** End-to-end latency: the send time travels in the text ("<n>|<ms>|xxx..."), as in the load tool. */
export const e2eLatency = new Trend("shardchat_e2e_ms", true);
export const delivered = new Counter("shardchat_delivered");
/** Messages that arrived twice or out of order per sender: must stay 0. */
export const misordered = new Counter("shardchat_misordered");

export function loadText(n: number, size: number): string {
  const head = `${n}|${Date.now()}|`;
  return head.length >= size ? head : head + "x".repeat(size - head.length);
}

/** Records a received text; `last` holds the last number seen per sender (or group+sender). */
export function received(text: string, key: string, last: Map<string, number>): void {
  const [n, sentAt] = text.split("|");
  const num = Number(n);
  if (!Number.isInteger(num)) return;
  e2eLatency.add(Date.now() - Number(sentAt));
  delivered.add(1);
  if (num !== (last.get(key) ?? 0) + 1) misordered.add(1);
  last.set(key, num);
}

export interface PushedMessage {
  convId: string;
  seq: number;
  sender: string;
  text: string;
}

/** An Envelope in JSON: {"reqId": n, "<body>": {...}}. */
export type Envelope = { reqId?: number } & Record<string, unknown>;

export function frame(reqId: number, body: string, value: unknown): string {
  return JSON.stringify({ reqId, [body]: value });
}
