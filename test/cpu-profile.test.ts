import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { CpuProfiler, perfAvailable } from "../bench/load/cpu-profile.js";

// The bench's --perf: a real `perf record` of a real Node process that burns its CPU in one
// named function, read back per process. Skipped where perf cannot sample (no linux-perf, or
// perf_event_paranoid too high for the user).
describe.skipIf(!perfAvailable())("the bench's on-CPU profiles (perf)", () => {
  it("names the JavaScript function a process spends its CPU in, and leaves out an idle one", async () => {
    const busy = spawn(
      process.execPath,
      [
        "--perf-basic-prof",
        "-e",
        `function spinInHotLoop(n) { let x = 0; for (let i = 0; i < n; i++) x = (x * 31 + i) % 1000003; return x; }
         const end = Date.now() + 4000; let sink = 0; while (Date.now() < end) sink += spinInHotLoop(100000);
         console.log(sink);`,
      ],
      { stdio: "ignore" },
    );
    const idle = spawn(process.execPath, ["-e", "setTimeout(() => {}, 4000)"], { stdio: "ignore" });
    try {
      await new Promise((r) => setTimeout(r, 500));
      const profiler = CpuProfiler.start([
        { role: "busy", pid: busy.pid as number },
        { role: "idle", pid: idle.pid as number },
      ]);
      await new Promise((r) => setTimeout(r, 2000));
      const [hot, quiet] = await profiler.stop();
      expect(hot?.role).toBe("busy");
      expect(hot?.samples).toBeGreaterThan(200);
      expect(hot?.top[0]?.symbol).toMatch(/spinInHotLoop/);
      expect(hot?.top[0]?.kind).toBe("JavaScript");
      expect(hot?.kinds.JavaScript).toBeGreaterThan(0.5);
      expect(quiet?.samples ?? 0).toBeLessThan(20);
    } finally {
      busy.kill();
      idle.kill();
    }
  }, 20_000);
});
