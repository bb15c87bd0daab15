/**
 * Login storm over HTTP: every iteration logs one user in through gate (scrypt, ring lookup,
 * token). k6 run -e GATE_URL=... -e USERS_FILE=users.json k6/login-storm.ts
 */
import { check } from "k6";
import exec from "k6/execution";
import type { Options } from "k6/options";
import { loadUsers, login } from "./lib.ts";

const users = loadUsers();

export const options: Options = {
  scenarios: {
    storm: {
      executor: "shared-iterations",
      vus: Number(__ENV.VUS ?? 32),
      iterations: Number(__ENV.LOGINS ?? users.length),
      maxDuration: "2m",
    },
  },
  thresholds: {
    checks: ["rate>0.99"],
    http_req_failed: ["rate<0.01"],
    shardchat_login_ms: ["p(99)<2000"],
  },
};

export default function (): void {
  const u = users[exec.scenario.iterationInTest % users.length];
  if (!u) return;
  const answer = login(u);
  check(answer, { "login names a chat node": (a) => (a?.wsUrl ?? "").startsWith("ws") });
}
