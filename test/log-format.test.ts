import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { ROOT } from "./helpers/processes.js";

const run = promisify(execFile);
const SCRIPT = join(ROOT, "test/helpers/log-lines.ts");
// ESC [ ... m: a colour (SGR) sequence.
// biome-ignore lint/suspicious/noControlCharactersInRegex: the escape character is what is looked for
const COLOUR = /\x1b\[[0-9;]*m/;

/** The fixture's output with stdout a pipe (as under a process manager or in a container's log). */
async function piped(env: Record<string, string>): Promise<string> {
  const { stdout } = await run(process.execPath, ["--import", "tsx", SCRIPT], {
    cwd: ROOT,
    env: { ...process.env, ...env },
  });
  return stdout;
}

/** The fixture's output with stdout a terminal: util-linux `script` gives it a pseudo-terminal. */
async function onTerminal(env: Record<string, string>): Promise<string> {
  const command = `${process.execPath} --import tsx ${SCRIPT}`;
  const { stdout } = await run("script", ["-qfec", command, "/dev/null"], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: "", ...env },
  });
  return stdout;
}

const jsonLines = (out: string) =>
  out
    .split(/\r?\n/)
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as Record<string, unknown>);

const SAMPLE = { LOG_SAMPLE_MS: "1500", LOG_LEVEL: "info" };

describe("log format", () => {
  it("writes JSON lines when stdout is not a terminal, the hot-path line sampled", async () => {
    const lines = jsonLines(await piped({ ...SAMPLE, LOG_FORMAT: "auto" }));
    expect(lines.map((l) => [l.level, l.msg, l.attempt, l.suppressed])).toEqual([
      [30, "service listening", undefined, undefined],
      [40, "dependency unreachable", 1, undefined],
      [40, "dependency unreachable", 6, 4],
    ]);
    expect(lines[0]).toMatchObject({ service: "log-lines", port: 8180 });
  }, 60_000);

  it("writes pretty, coloured lines on a terminal", async () => {
    const out = await onTerminal({ ...SAMPLE, LOG_FORMAT: "auto" });
    expect(out).toMatch(COLOUR);
    const text = out.replace(new RegExp(COLOUR, "g"), "");
    expect(text).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: service listening\r?$/m);
    expect(text).toMatch(/^\s+port: 8180\r?$/m);
    expect(text.match(/WARN: dependency unreachable/g)).toHaveLength(2);
    expect(text).toMatch(/^\s+suppressed: 4\r?$/m);
    expect(text).not.toContain("a debug line");
    expect(text).not.toMatch(/^\{"level"/m);
  }, 60_000);

  it("keeps JSON on a terminal with LOG_FORMAT=json, and drops the colours with NO_COLOR", async () => {
    const json = await onTerminal({ ...SAMPLE, LOG_FORMAT: "json" });
    expect(json).not.toMatch(COLOUR);
    expect(jsonLines(json).map((l) => l.msg)).toEqual([
      "service listening",
      "dependency unreachable",
      "dependency unreachable",
    ]);
    const plain = await onTerminal({ ...SAMPLE, LOG_FORMAT: "auto", NO_COLOR: "1" });
    expect(plain).not.toMatch(COLOUR);
    expect(plain).toMatch(/INFO: service listening/);
  }, 60_000);

  it("writes every hot-path line with LOG_SAMPLE_MS=0, and pretty lines to a pipe with LOG_FORMAT=pretty", async () => {
    const all = jsonLines(await piped({ LOG_SAMPLE_MS: "0", LOG_FORMAT: "json" }));
    expect(all.filter((l) => l.msg === "dependency unreachable").map((l) => l.attempt)).toEqual([1, 2, 3, 4, 5, 6]);
    const pretty = await piped({ ...SAMPLE, LOG_FORMAT: "pretty" });
    expect(pretty).toMatch(/INFO: service listening/);
    // Not a terminal: no colours unless it is one.
    expect(pretty).not.toMatch(COLOUR);
  }, 60_000);
});
