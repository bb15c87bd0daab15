import { defaultServerConditions } from "vite";
import { defineConfig } from "vitest/config";

// The main suite: files run in parallel, each in its own database and Redis key prefix.
// Tests that break shared infrastructure on purpose (kill a Redis master, stop a MySQL shard,
// kill chat nodes of the local stack) live in test/stack/ and run afterwards, one file at a
// time (vitest.stack.config.ts), so no other test sees their faults.
export default defineConfig({
  // @shardchat/* from their TypeScript sources (packages/*/src), as tsconfig.json's customConditions;
  // the rest is vitest's own default, which leaves out `module` (bundler-only ESM builds that Node
  // cannot load, such as @aws-sdk's dist-es).
  ssr: {
    resolve: { conditions: ["shardchat-source", ...defaultServerConditions.filter((c) => c !== "module")] },
  },
  test: {
    include: ["test/**/*.test.ts"],
    exclude: ["test/stack/**", "**/node_modules/**"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    maxWorkers: 2,
    reporters: ["default", "./test/helpers/summary-reporter.ts"],
  },
});
