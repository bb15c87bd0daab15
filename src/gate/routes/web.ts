import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import fastifyStatic from "@fastify/static";
import type { FastifyPluginAsync } from "fastify";
import type { GateDeps } from "../deps.js";

/** web/dist of this repository: where `npm run web:build` writes the client. */
export const DEFAULT_WEB_DIR = join(dirname(fileURLToPath(import.meta.url)), "../../../web/dist");

/**
 * The web client's own code only: scripts, styles and images from this gate; sockets to any
 * chat node (they live on other ports, often other hosts, named at login); never framed by
 * another site (clickjacking), no plugins, forms only to this gate.
 */
export const WEB_CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self' ws: wss:",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

/**
 * The built web client under `/` (its API calls go to the /v1 routes of this same gate). A
 * directory without index.html (the client was never built) serves nothing, with a warning.
 */
export const webRoute: FastifyPluginAsync<Pick<GateDeps, "config" | "log">> = async (app, { config, log }) => {
  const root = resolve(config.WEB_DIR || DEFAULT_WEB_DIR);
  if (!existsSync(join(root, "index.html"))) {
    log.warn({ root }, "no built web client: run `npm run web:build` to serve it under /");
    return;
  }
  await app.register(fastifyStatic, {
    root,
    prefix: "/",
    index: ["index.html"],
    wildcard: false,
    setHeaders(res) {
      res.header("content-security-policy", WEB_CONTENT_SECURITY_POLICY);
      // For browsers older than frame-ancestors, and against content sniffing.
      res.header("x-frame-options", "DENY");
      res.header("x-content-type-options", "nosniff");
      res.header("referrer-policy", "no-referrer");
    },
  });
};
