import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { ROOT } from "./processes.js";

const run = promisify(execFile);

/** The stack's ports and names, as ops/stack/env.sh defines them (one source of truth). */
export interface StackEnv {
  mysqlPorts: number[];
  redisPorts: number[];
  redisNodes: string;
  dir: string;
  logDir: string;
  runDir: string;
}

export async function stackEnv(): Promise<StackEnv> {
  const script = `source ${JSON.stringify(join(ROOT, "ops/stack/env.sh"))}
echo "$(stack_mysql_ports)"; echo "$STACK_REDIS_PORTS"; echo "$(stack_redis_nodes)"
echo "$STACK_DIR"; echo "$STACK_LOG_DIR"; echo "$STACK_RUN_DIR"`;
  const { stdout } = await run("bash", ["-c", script]);
  const [mysql = "", redis = "", nodes = "", dir = "", logDir = "", runDir = ""] = stdout.trim().split("\n");
  const ports = (s: string) => s.trim().split(/\s+/).map(Number);
  return { mysqlPorts: ports(mysql), redisPorts: ports(redis), redisNodes: nodes, dir, logDir, runDir };
}

/** Starts the stack's databases and Redis Cluster (ops/stack/up.sh --infra), reusing what runs. */
export async function stackInfraUp(): Promise<StackEnv> {
  await run("bash", [join(ROOT, "ops/stack/up.sh"), "--infra"], { timeout: 240_000 });
  return stackEnv();
}
