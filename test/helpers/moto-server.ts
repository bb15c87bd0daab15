import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { freePort } from "./ports.js";
import type { S3Server } from "./s3-server.js";
import { until } from "./waits.js";

/**
 * A real S3-protocol server (moto's `moto_server`, Python, on the machine's image) on
 * 127.0.0.1, in memory, with one bucket. Unlike s3rver it serves what `@tus/s3-store` needs of
 * multipart uploads: ListParts, AbortMultipartUpload and ListMultipartUploads.
 */
export async function startMotoServer(bucket = "shardchat-test"): Promise<S3Server> {
  const port = await freePort();
  const child: ChildProcess = spawn("moto_server", ["-H", "127.0.0.1", "-p", String(port)], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let output = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  });
  const spawnFailed = once(child, "error").then(([err]) => {
    throw new Error(`moto_server (pip package moto[server]) could not start: ${(err as Error).message}`);
  });
  const endpoint = `http://127.0.0.1:${port}`;
  await Promise.race([
    spawnFailed,
    until(
      "moto_server",
      async () => (await fetch(endpoint).catch(() => null)) !== null,
      () => output,
    ),
  ]);
  const client = new S3Client({
    region: "us-east-1",
    endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: "moto", secretAccessKey: "moto" },
  });
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  client.destroy();
  return {
    endpoint,
    bucket,
    accessKeyId: "moto",
    secretAccessKey: "moto",
    async close() {
      if (child.exitCode !== null) return;
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      await exited;
    },
  };
}
