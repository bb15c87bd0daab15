// Fails when src/gen or packages/protocol/src/gen is not what `npm run proto` makes from proto/
// now: generated types are never edited by hand, and never go stale.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

const root = join(import.meta.dirname, "..");
const out = mkdtempSync(join(tmpdir(), "proto-fresh-"));
/** buf.gen.yaml's outputs: the client protocol (packages/protocol) and the cluster's own services. */
const GENERATED = ["src/gen", "packages/protocol/src/gen"];

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

try {
  execFileSync(join(root, "node_modules/.bin/buf"), ["generate", "--output", out], { cwd: root, stdio: "inherit" });
  let count = 0;
  for (const dir of GENERATED) {
    const fresh = join(out, dir);
    const committed = join(root, dir);
    const a = files(fresh)
      .map((f) => relative(fresh, f))
      .sort();
    const b = files(committed)
      .map((f) => relative(committed, f))
      .sort();
    const stale = [...new Set([...a, ...b])].filter(
      (f) =>
        !a.includes(f) ||
        !b.includes(f) ||
        readFileSync(join(fresh, f), "utf8") !== readFileSync(join(committed, f), "utf8"),
    );
    if (stale.length > 0) {
      console.error(`${dir} is stale (run npm run proto): ${stale.join(", ")}`);
      process.exit(1);
    }
    count += a.length;
  }
  console.log(`${GENERATED.join(" and ")} match proto/ (${count} files)`);
} finally {
  rmSync(out, { recursive: true, force: true });
}
