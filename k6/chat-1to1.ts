/**
 * 1:1 chat over WebSocket with JSON text frames: VU k logs in as user k and chats with the
 * user of VU k^1 (its pair), sending RATE messages per second, acking what it receives.
 *   k6 run -e GATE_URL=... -e USERS_FILE=users.json -e VUS=40 -e RATE=5 k6/chat-1to1.ts
 */
import { check } from "k6";
import exec from "k6/execution";
import type { Options } from "k6/options";
import ws from "k6/ws";
import { type Envelope, frame, loadText, loadUsers, login, type PushedMessage, received } from "./lib.ts";

const users = loadUsers();
const seconds = Number(__ENV.SECONDS ?? 30);
const rate = Number(__ENV.RATE ?? 5);
const size = Number(__ENV.SIZE ?? 64);

export const options: Options = {
  scenarios: {
    chat: {
      executor: "per-vu-iterations",
      vus: Number(__ENV.VUS ?? 40),
      iterations: 1,
      maxDuration: `${seconds + 60}s`,
    },
  },
  thresholds: {
    checks: ["rate>0.99"],
    shardchat_misordered: ["count==0"],
    shardchat_e2e_ms: ["p(99)<50"],
    shardchat_delivered: ["count>0"],
  },
};

export default function (): void {
  const me = exec.vu.idInTest - 1;
  const u = users[me % users.length];
  const peer = users[(me ^ 1) % users.length];
  if (!u || !peer) return;
  const answer = login(u);
  if (!answer) return;
  const last = new Map<string, number>();
  let reqId = 1;
  let n = 0;
  const res = ws.connect(answer.wsUrl, null, (socket) => {
    socket.on("open", () => socket.send(frame(reqId++, "loginReq", { uid: answer.uid, token: answer.token })));
    socket.on("message", (data) => {
      const env = JSON.parse(data) as Envelope;
      if (env.loginResp) {
        socket.setInterval(() => {
          n += 1;
          socket.send(
            frame(reqId++, "sendReq", {
              toUid: peer.uid,
              clientMsgId: `${u.uid}-${n}`,
              kind: "MESSAGE_KIND_TEXT",
              text: loadText(n, size),
            }),
          );
        }, 1000 / rate);
        socket.setInterval(
          () => socket.send(frame(reqId++, "heartbeatReq", { clientTimeMs: String(Date.now()) })),
          20_000,
        );
        socket.setTimeout(() => socket.close(), seconds * 1000);
      }
      const push = (env.messagePush as { message?: PushedMessage } | undefined)?.message;
      if (push) {
        if (push.sender !== u.uid) received(push.text, push.sender, last);
        socket.send(frame(reqId++, "ackReq", { cursors: [{ convId: push.convId, seq: push.seq }] }));
      }
      check(env, { "no error reply": (e) => e.error === undefined });
    });
  });
  check(res, { "websocket upgraded": (r) => r?.status === 101 });
}
