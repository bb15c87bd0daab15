import { describe, expect, it } from "vitest";
import { runChaos } from "../chaos/chaos.js";

/**
 * The short form of `npm run chaos` (test/chaos/): every fault in turn, held briefly, under a
 * small steady chat load on the multi-shard stack. Every fault is healed and what it killed is
 * started again, whether or not the checks pass.
 */
describe("fault injection (short)", () => {
  it("loses no acked message and shows no duplicate under each fault", async () => {
    const report = await runChaos({
      pairs: 3,
      ratePerSender: 4,
      mysqlStopMs: 4000,
      holdMs: 3000,
      delayMs: 300,
      warmupMs: 1500,
      log: (line) => console.log(line),
    });
    expect(report.results.map((r) => r.fault)).toEqual([
      "chat-node-kill9",
      "redis-master-kill9",
      "mysql-shard-stop",
      "status-stop",
      "verify-stop",
      "network-delay",
      "gate-restart",
    ]);
    for (const r of report.results) {
      expect({ fault: r.fault, lost: r.lost, duplicates: r.duplicates }).toEqual({
        fault: r.fault,
        lost: 0,
        duplicates: 0,
      });
      expect(r.acked, r.fault).toBeGreaterThan(0);
    }
  }, 900_000);
});
