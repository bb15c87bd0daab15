import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { SystemProcess } from "./usage.js";

/**
 * Where each process's CPU goes while a run goes: `perf record -a -e cpu-clock`, read per process
 * (every thread of it). cpu-clock samples a thread only while it runs on a core, so
 * time spent waiting, preempted or blocked in a syscall is not counted, unlike V8's
 * --cpu-prof, which samples by the wall clock and, on a saturated machine, charges a
 * preemption to whatever frame was running. JavaScript frames have names when the Node
 * processes run with --perf-basic-prof (`npm run bench -- --perf` sets it for every process).
 */

/** What a symbol is, so the spread of a profile can be read at a glance. */
export type SymbolKind =
  | "JavaScript"
  | "V8 builtins and ICs"
  | "GC"
  | "JIT compiler"
  | "V8 runtime"
  | "node, libuv, addons"
  | "SQLite"
  | "libc (malloc, memcpy)"
  | "kernel"
  | "server";

export interface ProcessProfile {
  role: string;
  pid: number;
  samples: number;
  /** The symbols with the most samples: their share of this process's samples. */
  top: { symbol: string; kind: SymbolKind; share: number }[];
  /** Share of this process's samples by kind. */
  kinds: Partial<Record<SymbolKind, number>>;
}

/** perf is installed and may sample (as root, or with perf_event_paranoid low enough). */
export function perfAvailable(): boolean {
  try {
    execFileSync("perf", ["record", "-a", "-q", "-e", "cpu-clock", "-o", "/dev/null", "--", "true"], {
      stdio: "ignore",
    });
    return true;
  } catch {
    return false;
  }
}

export class CpuProfiler {
  private constructor(
    private readonly dir: string,
    private readonly file: string,
    private readonly child: ChildProcess,
    private readonly processes: SystemProcess[],
  ) {}

  /**
   * Starts one system-wide recording at `hz` samples a second per core, read per process
   * afterwards. (A recording per process costs a perf process each, which on 2 cores halved
   * the stack's throughput.)
   */
  static start(processes: SystemProcess[], hz = 999): CpuProfiler {
    const dir = mkdtempSync(path.join(os.tmpdir(), "bench-perf-"));
    const file = path.join(dir, "perf.data");
    const child = spawn("perf", ["record", "-a", "-q", "-e", "cpu-clock", "-F", String(hz), "-o", file], {
      stdio: "ignore",
    });
    return new CpuProfiler(dir, file, child, processes);
  }

  /** Stops the recording and reads each process's top symbols. */
  async stop(top = 12): Promise<ProcessProfile[]> {
    await new Promise<void>((resolve) => {
      if (this.child.exitCode !== null) return resolve();
      this.child.once("close", () => resolve());
      this.child.kill("SIGINT");
    });
    try {
      return this.processes.map((p) => readProfile(p, this.file, top));
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

function readProfile(p: SystemProcess, file: string, top: number): ProcessProfile {
  let out = "";
  try {
    out = execFileSync(
      "perf",
      // --pid: every thread of the process.
      [
        "report",
        "-i",
        file,
        "--pid",
        String(p.pid),
        "--no-children",
        "-g",
        "none",
        "--sort",
        "dso,sym",
        "--stdio",
        "-t",
        "|",
        "-n",
      ],
      { encoding: "utf8", maxBuffer: 64 * 2 ** 20, stdio: ["ignore", "pipe", "ignore"] },
    );
  } catch {
    return { role: p.role, pid: p.pid, samples: 0, top: [], kinds: {} };
  }
  const rows: { symbol: string; kind: SymbolKind; samples: number }[] = [];
  for (const line of out.split("\n")) {
    if (line.startsWith("#") || !line.includes("|")) continue;
    const [, count, dso, sym] = line.split("|").map((f) => f.trim());
    const samples = Number(count);
    if (!Number.isFinite(samples) || samples <= 0 || sym === undefined || dso === undefined) continue;
    const symbol = sym.replace(/^\[[.k]\]\s*/, "").replace(/file:\/\/\/.*?(node_modules\/|src\/|packages\/)/, "$1");
    rows.push({ symbol, kind: kindOf(p.role, dso, sym), samples });
  }
  const samples = rows.reduce((a, r) => a + r.samples, 0);
  const kinds: Partial<Record<SymbolKind, number>> = {};
  for (const r of rows) kinds[r.kind] = (kinds[r.kind] ?? 0) + r.samples / samples;
  return {
    role: p.role,
    pid: p.pid,
    samples,
    top: rows
      .sort((a, b) => b.samples - a.samples)
      .slice(0, top)
      .map((r) => ({ symbol: r.symbol, kind: r.kind, share: r.samples / samples })),
    kinds,
  };
}

function kindOf(role: string, dso: string, sym: string): SymbolKind {
  if (sym.startsWith("[k]")) return "kernel";
  const name = sym.replace(/^\[[.k]\]\s*/, "");
  if (/^(JS|LazyCompile|Function|Script|RegExp|Eval):/.test(name) || dso.startsWith("[JIT]")) return "JavaScript";
  if (/^(mariadbd|redis-server)/.test(role) || /mariadbd|redis-server/.test(dso)) return "server";
  if (/^Builtins_/.test(name)) return "V8 builtins and ICs";
  if (/Scaveng|Mark|Sweep|Heap::|Evacuat|GC|Compactor|ArrayBufferSweeper/.test(name)) return "GC";
  if (/compiler::|maglev|Turbofan|Pipeline|Baseline/.test(name)) return "JIT compiler";
  if (/sqlite/.test(dso) || /^sqlite3/.test(name)) return "SQLite";
  if (/libc|libstdc\+\+|libm\.|libgcc/.test(dso)) return "libc (malloc, memcpy)";
  if (/^v8::|^V8 /.test(name)) return "V8 runtime";
  return "node, libuv, addons";
}
