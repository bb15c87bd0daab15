import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { protocolMarkdown, readmeWithProtocol } from "../src/protocol/protocol-table.js";

const README = join(import.meta.dirname, "../README.md");

describe("README protocol tables", () => {
  it("are generated from client.proto's comments (run `npm run docs` when this fails)", () => {
    const readme = readFileSync(README, "utf8");
    expect(readme).toBe(readmeWithProtocol(readme));
  });

  it("pairs each request with its response and splits out the errors sentence", () => {
    const proto = `
// Says hello. Errors: NOT_FRIENDS, PEER_NOT_FOUND. Then it waits.
message HelloRequest {}
message HelloResponse {}
// Someone waved.
message WavePush {}
message Envelope {
  uint32 req_id = 1;
  oneof body {
    HelloRequest hello_req = 50;
    HelloResponse hello_resp = 51;
    WavePush wave_push = 200;
  }
}`;
    const table = protocolMarkdown(proto).split("\n");
    expect(table).toContain(
      "| `hello_req` HelloRequest (50) | `hello_resp` HelloResponse (51) | Says hello. Then it waits. | NOT_FRIENDS, PEER_NOT_FOUND |",
    );
    expect(table).toContain("| `wave_push` WavePush (200) | Someone waved. |");
  });
});
