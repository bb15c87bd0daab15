import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type SettingName, settings } from "./settings.js";

/** The settings as a Markdown table, for README (between the settings markers). */
export function settingsMarkdown(): string {
  const rows = (Object.keys(settings) as SettingName[]).map((name) => {
    const s = settings[name];
    return `| \`${name}\` | \`${JSON.stringify(s.default)}\` | ${s.doc.replace(/\|/g, "\\|")} |`;
  });
  return ["| setting | default | what |", "|---|---|---|", ...rows].join("\n");
}

export const START = "<!-- settings:start (npm run docs) -->";
export const END = "<!-- settings:end -->";

/** README with its settings section replaced by the current table. */
export function readmeWithSettings(readme: string): string {
  const from = readme.indexOf(START);
  const to = readme.indexOf(END);
  if (from < 0 || to < from) throw new Error("README has no settings markers");
  return `${readme.slice(0, from + START.length)}\n${settingsMarkdown()}\n${readme.slice(to)}`;
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  const path = join(import.meta.dirname, "../../README.md");
  writeFileSync(path, readmeWithSettings(readFileSync(path, "utf8")));
  console.log("README settings table written");
}
