import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { defaultClientConditions, defineConfig } from "vite";

const here = dirname(fileURLToPath(import.meta.url));

/**
 * The web client. It imports @shardchat/sdk from its sources (the `shardchat-source` condition,
 * no build of the package to go stale); the `browser` condition gives it the SDK's browser wire
 * (#wire: the browser's WebSocket, no node:net nor `ws`), and the SDK's `events` is the npm
 * package of that name here (Node's own module in Node).
 */
export default defineConfig({
  root: here,
  base: "/",
  build: {
    outDir: resolve(here, "dist"),
    emptyOutDir: true,
    sourcemap: true,
    target: "es2022",
    rolldownOptions: {
      // The service worker (push notifications) is its own entry, at the web root as /sw.js: a
      // worker controls only the paths below its own, and its URL must not change between builds.
      input: { index: resolve(here, "index.html"), sw: resolve(here, "src/sw.ts") },
      output: { entryFileNames: (chunk) => (chunk.name === "sw" ? "sw.js" : "assets/[name]-[hash].js") },
    },
  },
  resolve: { conditions: ["shardchat-source", ...defaultClientConditions] },
  logLevel: "warn",
});
