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
  build: { outDir: resolve(here, "dist"), emptyOutDir: true, sourcemap: true, target: "es2022" },
  resolve: {
    alias: [
      { find: /^\.\/wire\.js$/, replacement: resolve(here, "../src/sdk/wire-browser.ts") },
      { find: /^node:events$/, replacement: "events" },
    ],
  },
  logLevel: "warn",
});
