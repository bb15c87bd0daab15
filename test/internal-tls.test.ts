import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config/load.js";
import type { Config } from "../src/config/settings.js";
import { ErrorCode } from "../src/errors.js";
import { StatusServiceService } from "../src/gen/shardchat/v1/status.js";
import { grpcClient } from "../src/grpc/api.js";
import { type InternalTls, internalTlsOf } from "../src/grpc/tls.js";
import { createLogger } from "../src/log/logger.js";
import { MemoryNodeRegistry } from "../src/routing/memory/node-registry.js";
import { MemoryTokenStore } from "../src/routing/memory/token-store.js";
import { startStatus } from "../src/status/server.js";

/** Mutual TLS between services, with the certificates ops/make-internal-certs.sh makes. */
describe("internal gRPC over mutual TLS", () => {
  let dir: string;
  const files = (tls: string, name: string) => ({
    INTERNAL_TLS_CA: join(dir, tls, "ca.pem"),
    INTERNAL_TLS_CERT: join(dir, tls, `${name}.pem`),
    INTERNAL_TLS_KEY: join(dir, tls, `${name}.key`),
  });
  const base = (): Config => ({ ...loadConfig({ LOG_LEVEL: "warn" }), INTERNAL_AUTH_TOKEN: "" });
  const startOn = (address: string) =>
    startStatus({
      config: { ...base(), ...files("cluster", "status"), STATUS_ADDR: address },
      log: createLogger("status", "warn"),
      registry: new MemoryNodeRegistry(),
      tokens: new MemoryTokenStore(),
    });
  const issue = async (port: number, tls: InternalTls | undefined) => {
    const client = grpcClient(StatusServiceService, `127.0.0.1:${port}`, { deadlineMs: 2000, ...(tls ? { tls } : {}) });
    try {
      return await client.api.issueToken({ uid: "4242" });
    } finally {
      client.close();
    }
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "sc-tls-"));
    const script = join(import.meta.dirname, "..", "ops", "make-internal-certs.sh");
    execFileSync("bash", [script, join(dir, "cluster"), "status", "gate"]);
    execFileSync("bash", [script, join(dir, "intruder"), "gate"]);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("serves a caller with a certificate of the cluster's CA, and refuses one without or with another CA's", async () => {
    const server = await startOn("127.0.0.1:0");
    try {
      const gate = internalTlsOf({ ...base(), ...files("cluster", "gate") });
      expect((await issue(server.port, gate)).error).toBe(ErrorCode.OK);
      await expect(issue(server.port, undefined)).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
      const intruder = internalTlsOf({ ...base(), ...files("intruder", "gate") });
      await expect(issue(server.port, intruder)).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
    } finally {
      await server.close();
    }
  });

  it("may listen beyond loopback with mutual TLS and no token; wants all three files or none", async () => {
    const server = await startOn("0.0.0.0:0");
    await server.close();
    expect(() => internalTlsOf({ ...base(), INTERNAL_TLS_CA: join(dir, "cluster", "ca.pem") })).toThrow(
      /INTERNAL_TLS_CA, INTERNAL_TLS_CERT and INTERNAL_TLS_KEY/,
    );
  });
});
