/**
 * One client connection of a system under test, whatever the system: shardchat through its SDK,
 * or a reference (a plain ws relay, Socket.IO). The load scenarios only see this interface, so
 * every system is driven by the same code with the same message sizes.
 */

import type { Endpoint } from "@shardchat/sdk";
import { ChatClient } from "@shardchat/sdk";
import { io } from "socket.io-client";
import WebSocket from "ws";
import { AppError, ErrorCode } from "../../src/errors.js";

/** How one user reaches the system under test (plain data: it crosses to worker threads). */
export type Ticket =
  | {
      kind: "shardchat";
      id: string;
      token: string;
      transport: "tcp" | "ws" | "ws-json";
      host: string;
      port: number;
      wsUrl: string;
      /** Which node holds this user (pairs are spread over nodes by it). */
      node: string;
    }
  | { kind: "ws-relay"; id: string; url: string; node: string }
  | { kind: "socketio"; id: string; url: string; node: string };

export interface LoadConn {
  readonly id: string;
  /** Resolves when the system acknowledges the message (for shardchat: once it is stored). */
  send(to: string, text: string): Promise<void>;
  onMessage(handler: (from: string, text: string) => void): void;
  /** shardchat: a text to a group this user is in, resolved once stored. */
  sendGroup?(groupId: string, text: string): Promise<void>;
  close(): Promise<void>;
}

export interface ConnectOptions {
  localAddress?: string;
  /** Heartbeats at the server's interval (idle connections keep them). */
  heartbeat?: boolean;
}

export async function connect(ticket: Ticket, options: ConnectOptions = {}): Promise<LoadConn> {
  switch (ticket.kind) {
    case "shardchat":
      return connectShardchat(ticket, options);
    case "ws-relay":
      return connectRelay(ticket, options);
    case "socketio":
      return connectSocketIo(ticket, options);
  }
}

/** How many times a login the node paces (RATE_LIMITED) is tried again, as a real client would. */
const PACED_LOGIN_ATTEMPTS = 50;

/**
 * A client logged in as the ticket's user. A node admits logins at CHAT_LOGINS_PER_SECOND: one
 * refused as RATE_LIMITED (the connection is closed with it) is tried again on a new connection
 * after a jittered pause, as the SDK's ResilientChat does, so a load that logs thousands of
 * users into one node (the embedded default's group fan-out) is paced instead of failing.
 */
async function loggedIn(
  endpoint: Endpoint,
  ticket: Extract<Ticket, { kind: "shardchat" }>,
  options: ConnectOptions,
): Promise<ChatClient> {
  for (let attempt = 1; ; attempt++) {
    const client = await ChatClient.connect(endpoint, {
      heartbeat: options.heartbeat ?? true,
      requestTimeoutMs: 30_000,
    });
    try {
      await client.login(ticket.id, ticket.token);
      return client;
    } catch (err) {
      await client.close();
      const paced = err instanceof AppError && err.code === ErrorCode.RATE_LIMITED;
      if (!paced || attempt >= PACED_LOGIN_ATTEMPTS) throw err;
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 400));
    }
  }
}

async function connectShardchat(ticket: Extract<Ticket, { kind: "shardchat" }>, options: ConnectOptions) {
  const local = options.localAddress ? { localAddress: options.localAddress } : {};
  const endpoint: Endpoint =
    ticket.transport === "tcp"
      ? { transport: "tcp", host: ticket.host, port: ticket.port, ...local }
      : { transport: "ws", url: ticket.wsUrl, format: ticket.transport === "ws-json" ? "json" : "binary", ...local };
  const client = await loggedIn(endpoint, ticket, options);
  return {
    id: ticket.id,
    send: async (to: string, text: string) => {
      await client.sendText(to, text);
    },
    sendGroup: async (groupId: string, text: string) => {
      await client.sendGroupText(groupId, text);
    },
    onMessage: (handler: (from: string, text: string) => void) => {
      // A user's own messages come back to their other sessions (devices): not a delivery.
      client.on("message", (m) => {
        if (m.sender !== ticket.id) handler(m.sender, m.text);
      });
    },
    close: () => client.close(),
  } satisfies LoadConn;
}

/** The relay's wire: JSON text frames {t: to, m: text, r: request id} → {a: r} to the sender, {f, m} to the peer. */
async function connectRelay(ticket: Extract<Ticket, { kind: "ws-relay" }>, options: ConnectOptions) {
  const ws = new WebSocket(`${ticket.url}?id=${encodeURIComponent(ticket.id)}`, {
    perMessageDeflate: false,
    ...(options.localAddress ? { localAddress: options.localAddress } : {}),
  });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  const pending = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  let nextReq = 1;
  let handler: (from: string, text: string) => void = () => {};
  ws.on("message", (data) => {
    const msg = JSON.parse(data.toString()) as { a?: number; f?: string; m?: string };
    if (msg.a !== undefined) {
      pending.get(msg.a)?.resolve();
      pending.delete(msg.a);
    } else if (msg.f !== undefined && msg.m !== undefined) handler(msg.f, msg.m);
  });
  ws.on("close", () => {
    for (const p of pending.values()) p.reject(new Error("relay connection closed"));
    pending.clear();
  });
  const heartbeat = options.heartbeat === false ? undefined : setInterval(() => ws.ping(), 20_000).unref();
  return {
    id: ticket.id,
    send: (to: string, text: string) =>
      new Promise<void>((resolve, reject) => {
        const r = nextReq++;
        pending.set(r, { resolve, reject });
        ws.send(JSON.stringify({ t: to, m: text, r }));
      }),
    onMessage: (h: (from: string, text: string) => void) => {
      handler = h;
    },
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(heartbeat);
        if (ws.readyState === WebSocket.CLOSED) return resolve();
        ws.once("close", () => resolve());
        ws.close();
      }),
  } satisfies LoadConn;
}

async function connectSocketIo(ticket: Extract<Ticket, { kind: "socketio" }>, options: ConnectOptions) {
  const socket = io(ticket.url, {
    transports: ["websocket"],
    query: { id: ticket.id },
    reconnection: false,
    forceNew: true,
    ...(options.localAddress ? { localAddress: options.localAddress } : {}),
  });
  // The server joins the socket to its id's room on connection and says "ready": only then can it be reached.
  await new Promise<void>((resolve, reject) => {
    socket.once("ready", () => resolve());
    socket.once("connect_error", reject);
  });
  return {
    id: ticket.id,
    send: (to: string, text: string) =>
      new Promise<void>((resolve, reject) => {
        socket.timeout(30_000).emit("msg", { to, text }, (err: Error | null) => (err ? reject(err) : resolve()));
      }),
    onMessage: (h: (from: string, text: string) => void) => {
      socket.on("msg", (m: { from: string; text: string }) => h(m.from, m.text));
    },
    close: async () => {
      socket.disconnect();
    },
  } satisfies LoadConn;
}
