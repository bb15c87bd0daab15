import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { promisify } from "node:util";
import { build } from "vite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EmbeddedServer, startEmbedded } from "./helpers/embedded-server.js";
import { ROOT } from "./helpers/processes.js";

/**
 * The SDK as an integrator gets it: `npm pack` of @shardchat/protocol and @shardchat/sdk,
 * installed from the tarballs into a project of its own outside this repository, whose plain
 * .mjs script registers two users and has them exchange a message through `npm start`'s
 * embedded server.
 */
const execFileAsync = promisify(execFile);
const PACKAGES = ["@shardchat/protocol", "@shardchat/sdk"];

interface Packed {
  name: string;
  filename: string;
  files: { path: string }[];
}

let dir: string;
let packed: Packed[];
let scratch: string;
let server: EmbeddedServer;

/** npm as a user outside this repository runs it: no settings of the npm (or node) that runs vitest. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key) && key !== "NODE_OPTIONS"),
  );
}

function filesUnder(path: string): string[] {
  return readdirSync(path).flatMap((name) => {
    const full = join(path, name);
    return statSync(full).isDirectory() ? filesUnder(full) : [full];
  });
}

/** Every module specifier in an emitted .js or .d.ts file. */
function specifiers(source: string): string[] {
  return [...source.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)"([^"]+)"/g)].map((m) => m[1] as string);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "sc-sdk-package-"));
  // prepack builds each package's dist (tsc) first.
  const pack = await execFileAsync(
    "npm",
    ["pack", ...PACKAGES.flatMap((p) => ["--workspace", p]), "--pack-destination", dir, "--json"],
    { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 },
  );
  packed = JSON.parse(pack.stdout) as Packed[];

  scratch = join(dir, "scratch");
  mkdirSync(scratch);
  writeFileSync(join(scratch, "package.json"), JSON.stringify({ name: "scratch", private: true, type: "module" }));
  await execFileAsync(
    "npm",
    ["install", "--prefer-offline", "--no-audit", "--no-fund", ...packed.map((p) => join(dir, p.filename))],
    { cwd: scratch, env: cleanEnv() },
  );
  server = await startEmbedded("sdk-package-embedded");
}, 300_000);

afterAll(async () => {
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("the packed SDK", () => {
  it("holds built JavaScript and type declarations, and no server code", () => {
    expect(packed.map((p) => p.name).sort()).toEqual([...PACKAGES].sort());
    for (const p of packed) {
      const paths = p.files.map((f) => f.path);
      expect(paths, p.name).toContain("dist/index.js");
      expect(paths, p.name).toContain("dist/index.d.ts");
      // Only the package's own build: nothing from src/ (its own or the server's), no tests.
      for (const path of paths) expect(path, p.name).toMatch(/^(dist\/.+\.(js|d\.ts)|package\.json|README\.md)$/);
    }
    const sdk = packed.find((p) => p.name === "@shardchat/sdk") as Packed;
    const sdkPaths = sdk.files.map((f) => f.path);
    expect(sdkPaths).toEqual(expect.arrayContaining(["dist/wire.js", "dist/wire-browser.js", "README.md"]));
    expect(sdkPaths.filter((f) => f.endsWith(".d.ts")).length).toBe(sdkPaths.filter((f) => f.endsWith(".js")).length);
  });

  it("imports only its own files, its declared dependencies and Node's built-ins", () => {
    for (const name of PACKAGES) {
      const installed = join(scratch, "node_modules", name);
      const manifest = JSON.parse(readFileSync(join(installed, "package.json"), "utf8")) as {
        dependencies?: Record<string, string>;
      };
      const allowed = new Set(Object.keys(manifest.dependencies ?? {}));
      const seen = new Set<string>();
      for (const file of filesUnder(installed).filter((f) => /\.(js|d\.ts)$/.test(f))) {
        const where = `${name}/${relative(installed, file)}`;
        for (const spec of specifiers(readFileSync(file, "utf8"))) {
          seen.add(spec);
          if (spec.startsWith("./") || spec.startsWith("../")) {
            // A relative import stays inside the package's dist (no ../../src/storage, no gate).
            expect(join(file, "..", spec).startsWith(join(installed, "dist")), `${where}: ${spec}`).toBe(true);
            continue;
          }
          const pkg = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : (spec.split("/")[0] as string);
          const ok = spec === "#wire" || spec.startsWith("node:") || spec === "events" || allowed.has(pkg);
          expect(ok, `${where} imports ${spec}`).toBe(true);
        }
      }
      // The scan read the imports it is meant to judge.
      expect([...seen]).toEqual(
        expect.arrayContaining(name === "@shardchat/sdk" ? ["@shardchat/protocol", "ws", "#wire"] : ["./frame.js"]),
      );
    }
  });

  it("connects a scratch project to npm start and exchanges a message", async () => {
    const codes: Record<string, string> = {};
    for (const user of ["ann", "ben"]) codes[user] = await server.verifyCode(`${user}@example.test`);
    writeFileSync(
      join(scratch, "exchange.mjs"),
      `import { GateClient, openChat } from "@shardchat/sdk";

const gate = new GateClient(process.env.GATE_URL);
async function join(user) {
  const email = user + "@example.test";
  const password = "pw-" + user + "-secret";
  await gate.register({ user, email, password, code: process.env["CODE_" + user.toUpperCase()] });
  return gate.login(user, password);
}
const ann = await join("ann");
const ben = await join("ben");
const annChat = await openChat(ann, "tcp");
const benChat = await openChat(ben, "ws");
const received = new Promise((resolve) => benChat.once("message", resolve));
await annChat.sendText(ben.uid, "hello from a packed SDK");
const message = await received;
console.log(JSON.stringify({ ann: ann.uid, ben: ben.uid, sender: message.sender, recipient: message.recipient, text: message.text }));
await annChat.close();
await benChat.close();
`,
    );
    const run = await execFileAsync(process.execPath, ["exchange.mjs"], {
      cwd: scratch,
      env: { ...cleanEnv(), GATE_URL: server.gateUrl, CODE_ANN: codes.ann, CODE_BEN: codes.ben },
    });
    const printed = JSON.parse(run.stdout.trim()) as Record<string, string>;
    expect(printed.ann).toMatch(/^\d+$/);
    expect(printed).toMatchObject({
      sender: printed.ann,
      recipient: printed.ben,
      text: "hello from a packed SDK",
    });
  });

  it("bundles for a browser with the WebSocket wire and nothing of node:net or ws", async () => {
    writeFileSync(
      join(scratch, "browser.mjs"),
      `import { GateClient, openChat } from "@shardchat/sdk";\nexport { GateClient, openChat };\n`,
    );
    const bundle = async (ssr: boolean) => {
      const result = await build({
        root: scratch,
        configFile: false,
        logLevel: "silent",
        ssr: { noExternal: true },
        build: { write: false, ssr: ssr ? "browser.mjs" : false, lib: { entry: "browser.mjs", formats: ["es"] } },
      });
      const outputs = (Array.isArray(result) ? result : [result]) as { output: { type: string; code?: string }[] }[];
      return outputs.flatMap((r) => r.output.map((o) => o.code ?? "")).join("\n");
    };
    const browser = await bundle(false);
    expect(browser).toContain("a browser can only reach a chat node over WebSocket");
    expect(browser).not.toMatch(/node:net|from "ws"/);
    // The same entry for Node keeps the TCP wire: the bundle above is the browser's choice.
    expect(await bundle(true)).toMatch(/node:net/);
  });

  it("gives a TypeScript project the package's types", async () => {
    writeFileSync(
      join(scratch, "typed.ts"),
      `import { AppError, type ChatMessage, ErrorCode, GateClient, openChat } from "@shardchat/sdk";

export async function first(gateUrl: string): Promise<string> {
  const chat = await openChat(await new GateClient(gateUrl).login("ann", "pw"), "ws");
  const message = await new Promise<ChatMessage>((resolve) => chat.once("message", resolve));
  if (message.seq < 1) throw new AppError(ErrorCode.INVALID_ARGUMENT);
  return message.text;
}
// @ts-expect-error: a ChatMessage's seq is a number
export const wrong: ChatMessage["seq"] = "1";
`,
    );
    writeFileSync(
      join(scratch, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          module: "NodeNext",
          moduleResolution: "NodeNext",
          target: "ES2022",
          strict: true,
          noEmit: true,
          skipLibCheck: false,
          // Node's own types (the SDK's EventEmitter), from this repository's install.
          typeRoots: [join(ROOT, "node_modules/@types")],
          types: ["node"],
        },
        files: ["typed.ts"],
      }),
    );
    await execFileAsync(join(ROOT, "node_modules/.bin/tsc"), ["-p", scratch], { cwd: scratch, env: cleanEnv() });
  });
});
