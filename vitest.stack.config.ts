import { defaultServerConditions } from "vite";
import { defineConfig } from "vitest/config";

// The multi-shard stack suite (test/stack/): fault injection and scaling on the shared local
// stack (ops/stack), so one file at a time.
export default defineConfig({
  // @shardchat/* from their TypeScript sources (packages/*/src), as tsconfig.json's customConditions;
  // the rest is vitest's own default, which leaves out `module` (bundler-only ESM builds that Node
  // cannot load, such as @aws-sdk's dist-es).
  ssr: {
    resolve: { conditions: ["shardchat-source", ...defaultServerConditions.filter((c) => c !== "module")] },
  },
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
