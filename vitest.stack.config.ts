import { defineConfig } from "vitest/config";

// The multi-shard stack suite (test/stack/): fault injection and scaling on the shared local
// stack (ops/stack), so one file at a time.
export default defineConfig({
  test: {
    include: ["test/stack/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    pool: "forks",
    fileParallelism: false,
    maxWorkers: 1,
    reporters: ["default", "./test/helpers/summary-reporter.ts"],
  },
});
