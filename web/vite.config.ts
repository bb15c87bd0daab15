import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const here = dirname(fileURLToPath(import.meta.url));

/**
 * The web client. It imports the SDK from ../src/sdk; two substitutions keep Node out of the
 * browser bundle: the SDK's wire (node:net + the `ws` package) becomes wire-browser.ts (the
 * browser's WebSocket), and node:events becomes the `events` package (the same EventEmitter).
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
  resolve: {
    alias: [
      { find: /^\.\/wire\.js$/, replacement: resolve(here, "../src/sdk/wire-browser.ts") },
      { find: /^node:events$/, replacement: "events" },
    ],
  },
  logLevel: "warn",
});
