import { readFileSync } from "node:fs";

/**
 * `--help` for a bench entry: prints the entry file's opening comment, which is its usage, and
 * exits. One source for both, so the two cannot drift apart.
 */
export function exitWithUsage(entryUrl: string): never {
  const text = readFileSync(new URL(entryUrl), "utf8");
  const comment = /\/\*\*([\s\S]*?)\*\//.exec(text)?.[1] ?? "";
  console.log(comment.replace(/^ \* ?/gm, "").trim());
  process.exit(0);
}
