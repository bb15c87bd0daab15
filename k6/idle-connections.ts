/**
 * Idle connections: every VU logs in, opens its WebSocket session and holds it, sending only
 * heartbeats. Watch the chat nodes' memory while it holds.
 *   k6 run -e GATE_URL=... -e USERS_FILE=users.json -e VUS=5000 -e HOLD=60 k6/idle-connections.ts
 */
import { check } from "k6";
import exec from "k6/execution";
import type { Options } from "k6/options";
import ws from "k6/ws";
import { type Envelope, frame, loadUsers, login } from "./lib.ts";

const users = loadUsers();
const hold = Number(__ENV.HOLD ?? 60);

export const options: Options = {
  scenarios: {
    idle: {
      executor: "per-vu-iterations",
      vus: Number(__ENV.VUS ?? 1000),
      iterations: 1,
      maxDuration: `${hold + 120}s`,
    },
  },
  thresholds: {
    checks: ["rate>0.99"],
    ws_connecting: ["p(99)<1000"],
  },
};

export default function (): void {
  const u = users[(exec.vu.idInTest - 1) % users.length];
  if (!u) return;
  const answer = login(u);
  if (!answer) return;
  let reqId = 1;
  const res = ws.connect(answer.wsUrl, null, (socket) => {
    socket.on("open", () => socket.send(frame(reqId++, "loginReq", { uid: answer.uid, token: answer.token })));
    socket.on("message", (data) => {
      const env = JSON.parse(data) as Envelope;
      if (env.loginResp) {
        const every = (env.loginResp as { heartbeatIntervalMs?: number }).heartbeatIntervalMs ?? 20_000;
        socket.setInterval(
          () => socket.send(frame(reqId++, "heartbeatReq", { clientTimeMs: String(Date.now()) })),
          every,
        );
        socket.setTimeout(() => socket.close(), hold * 1000);
      }
      check(env, { "no error reply": (e) => e.error === undefined });
    });
  });
  check(res, { "websocket upgraded": (r) => r?.status === 101 });
}
