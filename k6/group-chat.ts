/**
 * Group chat over WebSocket with JSON text frames: VUs in groups of GROUP_SIZE; the first of
 * each group creates it and invites the others, each accepts the invitation pushed to it (a
 * server with GROUP_JOIN_CONSENT=none adds them at once and tells them with a group push), and
 * everyone sends RATE messages per second to it.
 *   k6 run -e GATE_URL=... -e USERS_FILE=users.json -e VUS=60 -e GROUP_SIZE=20 k6/group-chat.ts
 */
import { check } from "k6";
import exec from "k6/execution";
import type { Options } from "k6/options";
import ws from "k6/ws";
import { type Envelope, frame, loadText, loadUsers, login, type PushedMessage, received } from "./lib.ts";

const users = loadUsers();
const seconds = Number(__ENV.SECONDS ?? 30);
const rate = Number(__ENV.RATE ?? 1);
const size = Number(__ENV.SIZE ?? 64);
const groupSize = Number(__ENV.GROUP_SIZE ?? 20);

export const options: Options = {
  scenarios: {
    groups: {
      executor: "per-vu-iterations",
      vus: Number(__ENV.VUS ?? 60),
      iterations: 1,
      maxDuration: `${seconds + 60}s`,
    },
  },
  thresholds: {
    checks: ["rate>0.99"],
    shardchat_misordered: ["count==0"],
    shardchat_e2e_ms: ["p(99)<200"],
    shardchat_delivered: ["count>0"],
  },
};

export default function (): void {
  const me = exec.vu.idInTest - 1;
  const first = me - (me % groupSize);
  const u = users[me % users.length];
  if (!u) return;
  const members = users.slice(first, first + groupSize).map((m) => m.uid);
  const answer = login(u);
  if (!answer) return;
  const last = new Map<string, number>();
  let reqId = 1;
  let n = 0;
  let groupId: string | undefined;
  const res = ws.connect(answer.wsUrl, null, (socket) => {
    const startSending = (id: string) => {
      if (groupId) return;
      groupId = id;
      socket.setInterval(() => {
        n += 1;
        socket.send(
          frame(reqId++, "groupSendReq", {
            groupId,
            clientMsgId: `${u.uid}-${n}`,
            kind: "MESSAGE_KIND_TEXT",
            text: loadText(n, size),
          }),
        );
      }, 1000 / rate);
    };
    socket.on("open", () => socket.send(frame(reqId++, "loginReq", { uid: answer.uid, token: answer.token })));
    socket.on("message", (data) => {
      const env = JSON.parse(data) as Envelope;
      if (env.loginResp) {
        socket.setInterval(
          () => socket.send(frame(reqId++, "heartbeatReq", { clientTimeMs: String(Date.now()) })),
          20_000,
        );
        socket.setTimeout(() => socket.close(), seconds * 1000);
        // Let the other members log in first, so they are online for the group's creation push.
        if (me === first)
          socket.setTimeout(
            () => socket.send(frame(reqId++, "groupCreateReq", { name: `k6-${first}`, memberUids: members })),
            3000,
          );
      }
      const created = (env.groupCreateResp as { group?: { groupId: string } } | undefined)?.group;
      if (created) startSending(created.groupId);
      const invitation = (env.groupInvitationPush as { invitation?: { group?: { groupId: string } } } | undefined)
        ?.invitation?.group;
      if (invitation)
        socket.send(frame(reqId++, "groupInvitationReplyReq", { groupId: invitation.groupId, accept: true }));
      const joined = (env.groupInvitationReplyResp as { group?: { groupId: string } } | undefined)?.group;
      if (joined) startSending(joined.groupId);
      const event = (env.groupEventPush as { group?: { groupId: string } } | undefined)?.group;
      if (event?.groupId) startSending(event.groupId);
      const push = (env.messagePush as { message?: PushedMessage } | undefined)?.message;
      if (push) {
        if (push.convId.startsWith("g:")) startSending(push.convId.slice(2));
        if (push.sender !== u.uid) received(push.text, `${push.convId}/${push.sender}`, last);
        socket.send(frame(reqId++, "ackReq", { cursors: [{ convId: push.convId, seq: push.seq }] }));
      }
      check(env, { "no error reply": (e) => e.error === undefined });
    });
  });
  check(res, { "websocket upgraded": (r) => r?.status === 101 });
}
