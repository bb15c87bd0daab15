import { readFileSync } from "node:fs";
import type { Config } from "../config/settings.js";

/** This service's side of the internal gRPC's mutual TLS: the cluster's CA, its certificate and key. */
export interface InternalTls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** The files INTERNAL_TLS_CA, _CERT and _KEY name, read once; undefined when none is set. */
export function internalTlsOf(
  config: Pick<Config, "INTERNAL_TLS_CA" | "INTERNAL_TLS_CERT" | "INTERNAL_TLS_KEY">,
): InternalTls | undefined {
  const files = [config.INTERNAL_TLS_CA, config.INTERNAL_TLS_CERT, config.INTERNAL_TLS_KEY];
  if (files.every((f) => f === "")) return undefined;
  if (files.some((f) => f === "")) {
    throw new Error("mutual TLS needs all of INTERNAL_TLS_CA, INTERNAL_TLS_CERT and INTERNAL_TLS_KEY");
  }
  const [ca, cert, key] = files.map((f) => readFileSync(f)) as [Buffer, Buffer, Buffer];
  return { ca, cert, key };
}
