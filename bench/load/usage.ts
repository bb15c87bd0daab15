/**
 * What a system under test spends while a load runs, read from outside it: CPU time of every
 * one of its processes (the services, every MariaDB and Redis process it uses, and the load
 * generator, this process), the machine's CPU as a whole (/proc/stat), Redis commands (INFO
 * commandstats, every node) and MariaDB statements and commits (SHOW GLOBAL STATUS, every
 * instance). Take a snapshot before a run and one after; `usageBetween` gives the deltas.
 *
 *   const meter = await UsageMeter.open(target);
 *   const before = await meter.snapshot();
 *   ...                                            // the run
 *   const usage = usageBetween(before, await meter.snapshot());
 *   await meter.close();
 *
 * The counters of a MariaDB or Redis server are the server's, not the run's: when other clients
 * use it during the run (another run, tests), their work is in the deltas too. The meter's own
 * reads (one INFO per Redis node, one SHOW GLOBAL STATUS per instance per snapshot) are taken out.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import os from "node:os";
import { Redis } from "ioredis";
import mysql, { type Connection, type RowDataPacket } from "mysql2/promise";

export interface HostPort {
  host: string;
  port: number;
}

/** A MariaDB instance: where, and as whom (default root, no password, as the machine's). */
export interface MysqlAt extends HostPort {
  user?: string;
  password?: string;
}

/** host, port and credentials of a mysql:// URL. */
export function mysqlAtOf(url: string): MysqlAt {
  const u = new URL(url);
  return {
    host: u.hostname,
    port: Number(u.port || 3306),
    user: decodeURIComponent(u.username || "root"),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
  };
}

/** host and port of a redis:// URL or a "host:port". */
export function hostPortOf(s: string, defaultPort: number): HostPort {
  if (s.includes("://")) {
    const u = new URL(s);
    return { host: u.hostname, port: Number(u.port || defaultPort) };
  }
  const i = s.lastIndexOf(":");
  return i < 0 ? { host: s, port: defaultPort } : { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
}

/** A process of the system under test, by what it does ("chat-1", "gate", "shardchat"...). */
export interface SystemProcess {
  role: string;
  pid: number;
}

/** What a system runs on, for the meter: its own processes and the data stores it uses. */
export interface UsageSources {
  processes: SystemProcess[];
  redis: HostPort[];
  mysql: MysqlAt[];
}

/** The SHOW GLOBAL STATUS counters read (the ones a message's path moves). */
export const MYSQL_COUNTERS = [
  "Questions",
  "Com_select",
  "Com_insert",
  "Com_update",
  "Com_delete",
  "Com_replace",
  "Com_begin",
  "Com_commit",
  "Com_rollback",
  "Com_stmt_execute",
  "Handler_commit",
  "Innodb_data_fsyncs",
  "Innodb_os_log_fsyncs",
] as const;
export type MysqlCounter = (typeof MYSQL_COUNTERS)[number];

let clockTicks: number | undefined;
/** USER_HZ: the unit of the CPU times in /proc (almost always 100). */
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** CPU time (user + system, all threads) a process has used so far, in ms; undefined once it is gone. */
export function processCpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command (which may hold spaces) start after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond();
  } catch {
    return undefined;
  }
}

/**
 * Waits until the processes together use under `idleShare` of one core over a `windowMs` window
 * (at most `maxMs`), and answers how long that took. A run starts measuring after this: the
 * closes of an earlier run's connections (route removals, cursor writes) would otherwise be
 * counted in its CPU, store counters and latency.
 */
export async function settled(
  pids: number[],
  options: { idleShare?: number; windowMs?: number; maxMs?: number } = {},
): Promise<number> {
  const { idleShare = 0.05, windowMs = 300, maxMs = 30_000 } = options;
  const began = performance.now();
  const total = () => pids.reduce((sum, pid) => sum + (processCpuMs(pid) ?? 0), 0);
  while (performance.now() - began < maxMs) {
    const before = total();
    await new Promise((resolve) => setTimeout(resolve, windowMs));
    if (total() - before < idleShare * windowMs) break;
  }
  return Math.round(performance.now() - began);
}

/**
 * The machine's CPU time so far, in ms summed over every core. Busy: user, nice, system, irq and
 * softirq (the kernel's network work is mostly softirq); steal (the hypervisor running someone
 * else) is apart, neither busy nor idle.
 */
export function machineCpuMs(): {
  busyMs: number;
  totalMs: number;
  softirqMs: number;
  stealMs: number;
  contextSwitches: number;
} {
  const stat = readFileSync("/proc/stat", "utf8");
  const line = stat.split("\n", 1)[0] ?? "";
  // cpu user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user)
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = line
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const ms = (ticks: number) => (ticks * 1000) / ticksPerSecond();
  const busy = user + nice + system + irq + softirq;
  return {
    busyMs: ms(busy),
    totalMs: ms(busy + idle + iowait + steal),
    softirqMs: ms(irq + softirq),
    stealMs: ms(steal),
    // Every core's context switches since boot: what a message costs in wakeups, whoever woke.
    contextSwitches: Number(/^ctxt (\d+)$/m.exec(stat)?.[1] ?? 0),
  };
}

/** CPU ms so far of every process on the machine (to name the other work during a run). */
function allProcessCpuMs(): Map<number, number> {
  const out = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const ms = processCpuMs(Number(entry));
    if (ms !== undefined) out.set(Number(entry), ms);
  }
  return out;
}

/** "node --import tsx /x/src/chat/main.ts" → short enough for a table cell. */
function describeProcess(pid: number): string {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
    if (args.length === 0) return `[${commandOf(pid)}]`;
    const text = args.map((a) => (a.includes("/") && !a.startsWith("-") ? a.replace(/^.*\/(?=[^/]+\/[^/]+$)/, "") : a));
    const line = text.join(" ");
    return line.length > 80 ? `${line.slice(0, 77)}...` : line;
  } catch {
    return commandOf(pid) || "?";
  }
}

/** The process listening on a TCP port of this machine (by /proc: its socket's inode in some fd). */
export function pidListeningOn(port: number): number | undefined {
  const inodes = new Set<string>();
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const row of text.split("\n").slice(1)) {
      const f = row.trim().split(/\s+/);
      // local address "0100007F:0CEA", state 0A = LISTEN, inode in column 10
      const local = f[1];
      if (!local || f[3] !== "0A") continue;
      if (Number.parseInt(local.slice(local.lastIndexOf(":") + 1), 16) === port && f[9]) inodes.add(f[9]);
    }
  }
  if (inodes.size === 0) return undefined;
  const wanted = new Set([...inodes].map((i) => `socket:[${i}]`));
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${entry}/fd`);
    } catch {
      continue; // another user's process (not root) or gone
    }
    for (const fd of fds) {
      try {
        if (wanted.has(readlinkSync(`/proc/${entry}/fd/${fd}`))) return Number(entry);
      } catch {
        // closed meanwhile
      }
    }
  }
  return undefined;
}

function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}

const addr = (h: HostPort) => `${h.host}:${h.port}`;

interface RedisNode {
  at: HostPort;
  role: string;
  pid: number | undefined;
  client: Redis;
}

interface MysqlInstance {
  at: HostPort;
  pid: number | undefined;
  conn: Connection;
}

export interface UsageSnapshot {
  atMs: number;
  machine: ReturnType<typeof machineCpuMs>;
  /** CPU ms so far of every process on the machine. */
  all: Map<number, number>;
  /** CPU ms so far per process, keyed like `processes` (undefined: gone). */
  cpuMs: (number | undefined)[];
  /** Per Redis node: calls so far per command. */
  redis: Record<string, number>[];
  /** Per MariaDB instance: the counters so far. */
  mysql: Record<MysqlCounter, number>[];
}

export interface ProcessUsage {
  role: string;
  pid: number;
  cpuMs: number;
  /** Share of one core over the measured time, in %. */
  coreShare: number;
  /** The process was gone by the end (its CPU after the first snapshot is missing). */
  exited?: boolean;
}

export interface Usage {
  wallMs: number;
  cpus: number;
  /**
   * The whole machine: busy CPU ms over every core, and how busy it was (% of all cores); of it
   * irq + softirq (the kernel's network work, charged to no process); steal apart (not busy);
   * the context switches of every core (each a process put to sleep or woken).
   */
  machine: {
    busyCpuMs: number;
    busyPercent: number;
    softirqCpuMs: number;
    stealCpuMs: number;
    contextSwitches: number;
  };
  /** The processes outside the system and the load generator that used the most CPU meanwhile. */
  others: { pid: number; command: string; cpuMs: number }[];
  /** Every process of the system, then its MariaDB and Redis processes, then the load generator. */
  processes: ProcessUsage[];
  /** The system's processes (services, MariaDB, Redis), without the load generator. */
  systemCpuMs: number;
  loadGeneratorCpuMs: number;
  /** Machine busy time no process above accounts for: other work on the machine, the kernel. */
  otherCpuMs: number;
  redis: {
    nodes: { addr: string; role: string; calls: number; byCommand: Record<string, number> }[];
    calls: number;
    /** Of `calls`, on replicas: writes applied again from their master. */
    replicaCalls: number;
    byCommand: Record<string, number>;
  };
  mysql: {
    instances: { addr: string; counters: Record<MysqlCounter, number> }[];
    counters: Record<MysqlCounter, number>;
  };
}

/** Role names of the stores' processes: "mariadbd :3306", "redis :7001 master". */
export class UsageMeter {
  private constructor(
    readonly processes: SystemProcess[],
    private readonly redisNodes: RedisNode[],
    private readonly mysqlInstances: MysqlInstance[],
  ) {}

  /** Connects to every store (a Redis Cluster node brings in every member it knows). */
  static async open(sources: UsageSources): Promise<UsageMeter> {
    const redisNodes: RedisNode[] = [];
    const mysqlInstances: MysqlInstance[] = [];
    try {
      const seen = new Set<string>();
      const queue = [...sources.redis];
      for (let at = queue.shift(); at; at = queue.shift()) {
        if (seen.has(addr(at))) continue;
        seen.add(addr(at));
        const client = new Redis({ host: at.host, port: at.port, lazyConnect: true, maxRetriesPerRequest: 1 });
        await client.connect();
        const info = await client.info("server");
        const replication = await client.info("replication");
        const clusterInfo = await client.info("cluster");
        // INFO's process_id, unless the server runs in a pid namespace of its own (a container).
        const reported = Number(/process_id:(\d+)/.exec(info)?.[1]);
        const pid = reported && /redis/.test(commandOf(reported)) ? reported : pidListeningOn(at.port);
        const role = /role:(\w+)/.exec(replication)?.[1] === "slave" ? "replica" : "master";
        redisNodes.push({ at, role, pid, client });
        if (/cluster_enabled:1/.test(clusterInfo)) {
          // Every member of the cluster, whichever was named: ops scripts may have added some.
          const nodes = String(await client.call("CLUSTER", "NODES"));
          for (const line of nodes.split("\n")) {
            const [, address = "", flags = ""] = line.split(" ");
            if (!address || /fail|noaddr|handshake/.test(flags)) continue;
            const hostPort = address.split("@")[0] ?? "";
            const i = hostPort.lastIndexOf(":");
            queue.push({ host: hostPort.slice(0, i) || at.host, port: Number(hostPort.slice(i + 1)) });
          }
        }
      }
      for (const at of sources.mysql) {
        const conn = await mysql.createConnection({
          host: at.host,
          port: at.port,
          user: at.user ?? "root",
          ...(at.password ? { password: at.password } : {}),
        });
        mysqlInstances.push({ at, pid: await mariadbPid(conn, at.port), conn });
      }
    } catch (err) {
      await Promise.all(redisNodes.map((n) => n.client.quit().catch(() => n.client.disconnect())));
      await Promise.all(mysqlInstances.map((m) => m.conn.end().catch(() => undefined)));
      throw err;
    }
    const storeProcesses: SystemProcess[] = [
      ...mysqlInstances.flatMap((m) => (m.pid ? [{ role: `mariadbd :${m.at.port}`, pid: m.pid }] : [])),
      ...redisNodes.flatMap((n) => (n.pid ? [{ role: `redis-server :${n.at.port} (${n.role})`, pid: n.pid }] : [])),
    ];
    // One process may serve twice (the same store named twice): count it once.
    const byPid = new Map<number, SystemProcess>();
    for (const p of [...sources.processes, ...storeProcesses]) if (!byPid.has(p.pid)) byPid.set(p.pid, p);
    byPid.delete(process.pid);
    return new UsageMeter([...byPid.values()], redisNodes, mysqlInstances);
  }

  /** Stores the meter could not find a process for (their CPU is missing from the figures). */
  get unaccounted(): string[] {
    return [
      ...this.mysqlInstances.filter((m) => !m.pid).map((m) => `mariadbd ${addr(m.at)}`),
      ...this.redisNodes.filter((n) => !n.pid).map((n) => `redis ${addr(n.at)}`),
    ];
  }

  async snapshot(): Promise<UsageSnapshot> {
    const [redis, mysqlCounters] = await Promise.all([
      Promise.all(this.redisNodes.map((n) => n.client.info("commandstats").then(parseCommandStats))),
      Promise.all(
        this.mysqlInstances.map(async (m) => {
          const [rows] = await m.conn.query<RowDataPacket[]>(
            `SHOW GLOBAL STATUS WHERE Variable_name IN (${MYSQL_COUNTERS.map(() => "?").join(",")})`,
            [...MYSQL_COUNTERS],
          );
          const counters = Object.fromEntries(MYSQL_COUNTERS.map((k) => [k, 0])) as Record<MysqlCounter, number>;
          for (const row of rows) counters[row.Variable_name as MysqlCounter] = Number(row.Value);
          return counters;
        }),
      ),
    ]);
    return {
      atMs: performance.now(),
      machine: machineCpuMs(),
      all: allProcessCpuMs(),
      cpuMs: [...this.processes.map((p) => processCpuMs(p.pid)), processCpuMs(process.pid)],
      redis,
      mysql: mysqlCounters,
    };
  }

  /** The deltas between two snapshots of this meter. */
  between(before: UsageSnapshot, after: UsageSnapshot): Usage {
    const wallMs = Math.max(1, after.atMs - before.atMs);
    const cpus = os.cpus().length;
    const cpuDelta = (i: number) => {
      const a = before.cpuMs[i];
      const b = after.cpuMs[i];
      return { ms: a === undefined ? 0 : (b ?? a) - a, exited: a !== undefined && b === undefined };
    };
    const processes: ProcessUsage[] = [
      ...this.processes,
      { role: "load generator (this process)", pid: process.pid },
    ].map((p, i) => {
      const { ms, exited } = cpuDelta(i);
      return {
        role: p.role,
        pid: p.pid,
        cpuMs: Math.round(ms),
        coreShare: Math.round((ms / wallMs) * 1000) / 10,
        ...(exited ? { exited } : {}),
      };
    });
    const loadGeneratorCpuMs = processes.at(-1)?.cpuMs ?? 0;
    const systemCpuMs = processes.slice(0, -1).reduce((a, p) => a + p.cpuMs, 0);
    const busyCpuMs = Math.round(after.machine.busyMs - before.machine.busyMs);
    const totalCpuMs = Math.max(1, after.machine.totalMs - before.machine.totalMs);

    const redisNodes = this.redisNodes.map((n, i) => {
      const byCommand: Record<string, number> = {};
      const a = before.redis[i] ?? {};
      for (const [cmd, calls] of Object.entries(after.redis[i] ?? {})) {
        // The meter's own INFO between the two snapshots (the "after" one is not counted yet).
        const d = calls - (a[cmd] ?? 0) - (cmd === "info" ? 1 : 0);
        if (d > 0) byCommand[cmd] = d;
      }
      return {
        addr: addr(n.at),
        role: n.role,
        calls: Object.values(byCommand).reduce((x, y) => x + y, 0),
        byCommand,
      };
    });
    const byCommand: Record<string, number> = {};
    for (const n of redisNodes)
      for (const [cmd, d] of Object.entries(n.byCommand)) byCommand[cmd] = (byCommand[cmd] ?? 0) + d;

    const instances = this.mysqlInstances.map((m, i) => {
      const counters = Object.fromEntries(
        MYSQL_COUNTERS.map((k) => [k, (after.mysql[i]?.[k] ?? 0) - (before.mysql[i]?.[k] ?? 0)]),
      ) as Record<MysqlCounter, number>;
      // The meter's own SHOW GLOBAL STATUS (one per snapshot, counted when it starts).
      counters.Questions = Math.max(0, counters.Questions - 1);
      return { addr: addr(m.at), counters };
    });
    const counters = Object.fromEntries(
      MYSQL_COUNTERS.map((k) => [k, instances.reduce((a, x) => a + x.counters[k], 0)]),
    ) as Record<MysqlCounter, number>;

    return {
      wallMs: Math.round(wallMs),
      cpus,
      machine: {
        busyCpuMs,
        busyPercent: Math.round((busyCpuMs / totalCpuMs) * 1000) / 10,
        softirqCpuMs: Math.round(after.machine.softirqMs - before.machine.softirqMs),
        stealCpuMs: Math.round(after.machine.stealMs - before.machine.stealMs),
        contextSwitches: after.machine.contextSwitches - before.machine.contextSwitches,
      },
      others: this.others(before, after),
      processes,
      systemCpuMs,
      loadGeneratorCpuMs,
      otherCpuMs: Math.max(0, busyCpuMs - systemCpuMs - loadGeneratorCpuMs),
      redis: {
        nodes: redisNodes,
        calls: redisNodes.reduce((a, n) => a + n.calls, 0),
        replicaCalls: redisNodes.filter((n) => n.role === "replica").reduce((a, n) => a + n.calls, 0),
        byCommand,
      },
      mysql: { instances, counters },
    };
  }

  private others(before: UsageSnapshot, after: UsageSnapshot): Usage["others"] {
    const ours = new Set([...this.processes.map((p) => p.pid), process.pid]);
    const out: Usage["others"] = [];
    for (const [pid, ms] of after.all) {
      const was = before.all.get(pid);
      if (ours.has(pid)) continue;
      // Born during the run: all its CPU is the run's time.
      const cpuMs = Math.round(ms - (was ?? 0));
      if (cpuMs >= 20) out.push({ pid, command: describeProcess(pid), cpuMs });
    }
    return out.sort((a, b) => b.cpuMs - a.cpuMs).slice(0, 5);
  }

  async close(): Promise<void> {
    await Promise.all(this.redisNodes.map((n) => n.client.quit().catch(() => n.client.disconnect())));
    await Promise.all(this.mysqlInstances.map((m) => m.conn.end().catch(() => undefined)));
  }
}

/** "cmdstat_get:calls=5,usec=..." lines → { get: 5 } (subcommands read "cmdstat_cluster|nodes"). */
function parseCommandStats(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out[m[1] as string] = Number(m[2]);
  return out;
}

/** The mariadbd serving a connection: its pid file, else whoever listens on the port. */
export async function mariadbPid(conn: Connection, port: number): Promise<number | undefined> {
  const isServer = (pid: number) => /mariadbd|mysqld/.test(commandOf(pid));
  try {
    const [rows] = await conn.query<RowDataPacket[]>("SELECT @@pid_file AS f, @@port AS p");
    const file = String(rows[0]?.f ?? "");
    if (file && Number(rows[0]?.p) === port) {
      const pid = Number(readFileSync(file, "utf8").trim());
      if (pid > 0 && isServer(pid)) return pid;
    }
  } catch {
    // unreadable pid file: look by port
  }
  const pid = pidListeningOn(port);
  return pid && isServer(pid) ? pid : undefined;
}

/** A figure per message (or post), 3 significant decimals' worth. */
export function per(total: number, count: number): number {
  if (count <= 0) return 0;
  const v = total / count;
  return v >= 100 ? Math.round(v) : v >= 1 ? Math.round(v * 100) / 100 : Math.round(v * 1000) / 1000;
}
