import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, describeSettings, loadConfig } from "../src/config/load.js";
import { settings } from "../src/config/settings.js";
import { readmeWithSettings } from "../src/config/settings-table.js";

describe("config", () => {
  it("loads every default", () => {
    const config = loadConfig({});
    expect(config.GATE_PORT).toBe(8080);
    expect(config.VERIFY_CODE_TTL_SECONDS).toBe(180);
    expect(Object.keys(config).sort()).toEqual(Object.keys(settings).sort());
  });

  it("fails fast naming a bad setting", () => {
    expect(() => loadConfig({ GATE_PORT: "eighty" })).toThrow(ConfigError);
    expect(() => loadConfig({ GATE_PORT: "eighty" })).toThrow(/GATE_PORT/);
    expect(() => loadConfig({ CHAT_NODE_ID: "no spaces allowed" })).toThrow(/CHAT_NODE_ID/);
  });

  it("documents every setting in --help and in README", () => {
    const help = describeSettings();
    const readme = readFileSync(join(import.meta.dirname, "../README.md"), "utf8");
    for (const name of Object.keys(settings)) expect(help).toContain(name);
    expect(readmeWithSettings(readme), "README settings table is stale: npm run docs").toBe(readme);
  });
});
