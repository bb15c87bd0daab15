import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { crc32, deflateSync } from "node:zlib";
import { openChat } from "@shardchat/sdk";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LOG_DIR, ROOT } from "./helpers/processes.js";
import { type Services, startServices } from "./helpers/services.js";
import { codeFromMail } from "./helpers/smtp-sink.js";

/**
 * The web client in a real browser (Debian's chromium driven by playwright-core) against real
 * services: status, verify, gate (serving web/dist) and two chat nodes as processes, MariaDB,
 * Redis and a local SMTP server the verify codes are read from. Screenshots of the main
 * screens go to .test-logs/screenshots/, or to docs/screenshots/ with UPDATE_SCREENSHOTS=1
 * (so a test run leaves the committed ones alone).
 */
const SHOTS = process.env.UPDATE_SCREENSHOTS === "1" ? join(ROOT, "docs/screenshots") : join(LOG_DIR, "screenshots");
const STEP_MS = 20_000;

/** Waits for a value the page reaches by itself (a push, a render), up to a step's time. */
const poll = <T>(read: () => Promise<T> | T) => expect.poll(read, { timeout: STEP_MS, interval: 100 });

let s: Services;
let browser: Browser;
const contexts: BrowserContext[] = [];
/** Console errors and uncaught exceptions per page, asserted empty before the fault step. */
const problems: string[] = [];

interface User {
  name: string;
  password: string;
  page: Page;
  context: BrowserContext;
  uid: string;
  nodeId: string;
}

async function newPage(context: BrowserContext, label: string): Promise<Page> {
  const page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`${label} console: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`${label} pageerror: ${e.message}`));
  page.setDefaultTimeout(STEP_MS);
  return page;
}

async function newContext(viewport = { width: 1200, height: 800 }): Promise<BrowserContext> {
  const context = await browser.newContext({ viewport });
  contexts.push(context);
  return context;
}

async function stored(page: Page): Promise<{ uid: string; nodeId: string }> {
  return page.evaluate(() => JSON.parse(localStorage.getItem("shardchat.login") ?? "{}"));
}

/** Registers through the register screen (code from the SMTP sink) and lands in the chat screen. */
async function register(page: Page, name: string, shot?: string): Promise<void> {
  const email = `${name}@example.test`;
  await page.goto(s.gateUrl);
  await page.getByRole("tab", { name: "Register" }).click();
  const form = page.getByRole("form", { name: "Register" });
  await form.getByLabel("User name", { exact: true }).fill(name);
  await form.getByLabel("Email", { exact: true }).fill(email);
  await form.getByTestId("send-code").click();
  const code = codeFromMail(await s.smtp.waitForMail(email));
  // The cool-down timer runs on the button until another code may be asked for.
  await poll(() => form.getByTestId("send-code").textContent()).toMatch(/Resend in \d+s/);
  await form.getByLabel("Code from the email").fill(code);
  await form.getByLabel("Password", { exact: true }).fill(`pw-${name}-secret`);
  if (shot) await page.screenshot({ path: join(SHOTS, shot) });
  await form.getByRole("button", { name: "Create account" }).click();
  await page.getByTestId("me").waitFor();
  await poll(() => page.getByTestId("conn").getAttribute("data-state")).toBe("online");
}

async function user(context: BrowserContext, name: string, shot?: string): Promise<User> {
  const page = await newPage(context, name);
  await register(page, name, shot);
  const { uid, nodeId } = await stored(page);
  return { name, password: `pw-${name}-secret`, page, context, uid, nodeId };
}

async function openChatWith(page: Page, title: string): Promise<void> {
  await page.getByRole("tab", { name: "Chats" }).click();
  await page.getByTestId("conv").filter({ hasText: title }).first().click();
  await poll(() => page.getByTestId("chat-title").textContent()).toBe(title);
}

async function send(page: Page, text: string): Promise<void> {
  const box = page.getByLabel("Message", { exact: true });
  await box.fill(text);
  await box.press("Enter");
  await page.getByTestId("messages").getByText(text, { exact: true }).waitFor();
}

function sees(page: Page, text: string) {
  return page.getByTestId("messages").getByText(text, { exact: true }).waitFor();
}

/** The bubble whose own text is exactly `text` (not one quoting it). */
function bubble(page: Page, text: string) {
  const exact = new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`);
  return page.locator(".msg").filter({ has: page.locator(".text", { hasText: exact }) });
}

/** Hovers a bubble (its actions show) and clicks one of them by name. */
async function act(page: Page, text: string, action: string): Promise<void> {
  const b = bubble(page, text);
  await b.hover();
  await b.getByRole("button", { name: action, exact: true }).click();
}

async function befriend(a: User, b: User): Promise<void> {
  await a.page.getByRole("tab", { name: /^Friends/ }).click();
  await a.page.getByLabel("Search users").fill(b.name);
  await a.page.getByRole("button", { name: "Search" }).click();
  await a.page.getByLabel("Message with the request").fill(`hi ${b.name}, it's ${a.name}`);
  await a.page.getByRole("button", { name: "Add friend" }).click();
  // The application is pushed to b at once, wherever b's session is.
  await b.page.getByRole("tab", { name: "Friends (1)" }).click();
  await b.page.getByTestId("application").getByText(`it's ${a.name}`).waitFor();
  await b.page.getByTestId("application").getByRole("button", { name: "Accept" }).click();
  await b.page.getByTestId("friend").filter({ hasText: a.name }).waitFor();
  await a.page.getByTestId("friend").filter({ hasText: b.name }).waitFor();
}

/** A new desktop window logged in with the form; it signs the user's older web window out. */
async function logIn(u: User, password = u.password): Promise<void> {
  const context = await newContext();
  const page = await newPage(context, `${u.name}-desktop`);
  await page.goto(s.gateUrl);
  const login = page.getByRole("form", { name: "Log in" });
  await login.getByLabel("User name or email").fill(u.name);
  await login.getByLabel("Password").fill(password);
  await login.getByRole("button", { name: "Log in" }).click();
  await poll(() => page.getByTestId("conn").getAttribute("data-state")).toBe("online");
  Object.assign(u, { page, context, password });
}

/** The members panel of a group (with its moderation) in the Groups tab. */
async function membersOf(u: User, group: string) {
  await u.page.getByRole("tab", { name: "Groups" }).click();
  await u.page.getByTestId("group").filter({ hasText: group }).getByRole("button", { name: "members" }).click();
  const panel = u.page.getByRole("region", { name: `Members of ${group}` });
  await poll(() => panel.getByTestId("member").count()).toBeGreaterThan(1);
  return panel;
}

/** No web/dist, or a source it is built from (web/src, the SDK) changed after it. */
function webBuildIsStale(): boolean {
  const built = join(ROOT, "web/dist/index.html");
  if (!existsSync(built)) return true;
  const builtAt = statSync(built).mtimeMs;
  const newer = (dir: string): boolean =>
    readdirSync(dir, { withFileTypes: true }).some((e) =>
      e.isDirectory() ? newer(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs > builtAt,
    );
  return ["web/src", "packages/sdk/src", "packages/protocol/src", "web/index.html"].some((p) => {
    const path = join(ROOT, p);
    return statSync(path).isDirectory() ? newer(path) : statSync(path).mtimeMs > builtAt;
  });
}

beforeAll(async () => {
  execFileSync("bash", [join(ROOT, "ops/ensure-chromium.sh")], { stdio: "inherit" });
  if (webBuildIsStale()) execFileSync("npm", ["run", "web:build"], { cwd: ROOT, stdio: "inherit" });
  mkdirSync(SHOTS, { recursive: true });
  s = await startServices("web", 2, {
    VERIFY_COOLDOWN_SECONDS: 3,
    GATE_FILE_MAX_BYTES: 1024 * 1024,
    // The history step sends 45 messages in a burst from one connection.
    CHAT_USER_MSGS_PER_SECOND: 1000,
    CHAT_CONN_MSGS_PER_SECOND: 1000,
  });
  // playwright gives every launch a fresh temporary --user-data-dir of its own.
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      // A voice message records from a fake microphone, allowed without a prompt.
      "--use-fake-ui-for-media-stream",
      "--use-fake-device-for-media-stream",
    ],
  });
}, 240_000);

afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  await browser?.close();
  await s?.stop();
});

describe("web client in chromium", () => {
  let alice: User;
  let bob: User;
  let carol: User;

  it("gate serves the built client under /", async () => {
    const res = await fetch(`${s.gateUrl}/`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('<div id="app">');
    // Its own code only, and never inside another site's frame (the browser tests below would
    // report any violation as a console error).
    const policy = res.headers.get("content-security-policy") ?? "";
    for (const directive of [
      "default-src 'self'",
      "script-src 'self'",
      "frame-ancestors 'none'",
      "object-src 'none'",
    ]) {
      expect(policy).toContain(directive);
    }
    expect(res.headers.get("x-frame-options")).toBe("DENY");
    // The push notifications' service worker, at the web root: a worker controls only the paths below its own.
    const worker = await fetch(`${s.gateUrl}/sw.js`);
    expect(worker.status).toBe(200);
    expect(worker.headers.get("content-type")).toMatch(/javascript/);
    expect(await worker.text()).toContain("showNotification");
  });

  it("two browsers register with mailed codes and land on different chat nodes", { timeout: 120_000 }, async () => {
    alice = await user(await newContext(), "alice", "register.png");
    const bobContext = await newContext();
    // The ring places a uid; registering again until someone lands on the other node.
    for (let i = 0; i < 8; i++) {
      const candidate = await user(bobContext, `bob${i}`);
      if (candidate.nodeId !== alice.nodeId) {
        bob = candidate;
        break;
      }
      await candidate.page.getByRole("button", { name: "Log out" }).click();
      await candidate.page.getByRole("tab", { name: "Register" }).waitFor();
      await candidate.page.close();
    }
    expect(bob, "someone lands on the other chat node").toBeDefined();
    expect(new Set([alice.nodeId, bob.nodeId])).toEqual(new Set(["chat-1", "chat-2"]));
  });

  it("they become friends: the request arrives at once, presence shows online", { timeout: 60_000 }, async () => {
    await befriend(alice, bob);
    await poll(() =>
      alice.page.getByTestId("friend").filter({ hasText: bob.name }).locator(".presence.on").count(),
    ).toBe(1);
    await alice.page.screenshot({ path: join(SHOTS, "friends.png") });
  });

  it("chat both ways across the two nodes, with unread counts and delivery/read marks", {
    timeout: 60_000,
  }, async () => {
    await alice.page.getByRole("tab", { name: "Chats" }).click();
    await alice.page.getByLabel("Find a user by name, email or uid").fill(bob.name);
    await alice.page.getByRole("button", { name: "Find" }).click();
    await alice.page.getByRole("button", { name: new RegExp(`^${bob.name}`) }).click();
    await send(alice.page, "hello bob, from alice");
    const mine = alice.page.locator(".msg.mine").last();
    await poll(() => mine.locator(".mark").getAttribute("data-mark")).toBe("sent");

    await bob.page.getByRole("tab", { name: "Chats" }).click();
    const conv = bob.page.getByTestId("conv").filter({ hasText: alice.name });
    await poll(() => conv.getByTestId("unread").textContent()).toBe("1");
    await bob.page.screenshot({ path: join(SHOTS, "conversations.png") });
    await openChatWith(bob.page, alice.name);
    await sees(bob.page, "hello bob, from alice");
    // bob read it: alice's mark turns into the read mark.
    await poll(() => mine.locator(".mark").getAttribute("data-mark")).toBe("read");
    await send(bob.page, "hi alice! bob here");
    await sees(alice.page, "hi alice! bob here");
  });

  it("bob goes offline and finds what he missed when he comes back", { timeout: 60_000 }, async () => {
    await bob.page.close();
    await send(alice.page, "missed one");
    await send(alice.page, "missed two");
    bob.page = await newPage(bob.context, "bob-again");
    await bob.page.goto(s.gateUrl);
    // Logged in from localStorage, no password asked.
    await poll(() => bob.page.getByTestId("conn").getAttribute("data-state")).toBe("online");
    const conv = bob.page.getByTestId("conv").filter({ hasText: alice.name });
    await poll(() => conv.getByTestId("unread").textContent()).toBe("2");
    await openChatWith(bob.page, alice.name);
    await sees(bob.page, "missed one");
    await sees(bob.page, "missed two");
    const texts = await bob.page.locator(".msg .text").allTextContents();
    expect(texts.filter((t) => t === "missed one")).toHaveLength(1);
  });

  it("a file goes across: image preview from its thumbnail, and a download link", { timeout: 60_000 }, async () => {
    const png = gradientPng(800, 500);
    await alice.page
      .getByTestId("file-input")
      .setInputFiles({ name: "square.png", mimeType: "image/png", buffer: png });
    const link = bob.page.getByTestId("file-link").filter({ hasText: "square.png" });
    await link.waitFor();
    // The preview is gate's thumbnail (320 px wide), not the 800 px original.
    const img = bob.page.getByTestId("thumbnail").last();
    await poll(() => img.evaluate((el) => (el as HTMLImageElement).naturalWidth)).toBe(320);
    expect(new URL((await img.getAttribute("src")) ?? "", s.gateUrl).pathname).toMatch(/\/thumbnail$/);
    const href = await link.getAttribute("href");
    const res = await fetch(new URL(href ?? "", s.gateUrl));
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(png)).toBe(true);
    await bob.page.screenshot({ path: join(SHOTS, "chat.png") });
  });

  it("records a voice message with the microphone; the other side plays it inline", { timeout: 60_000 }, async () => {
    const record = alice.page.getByTestId("voice-record");
    await record.click();
    await alice.page.waitForTimeout(1_500);
    await record.click();
    const voice = bob.page.getByTestId("voice").last();
    await voice.waitFor();
    await poll(() => voice.textContent()).toMatch(/0:0[1-3]/);
    const player = voice.getByTestId("voice-player");
    const src = await player.getAttribute("src");
    const res = await fetch(new URL(src ?? "", s.gateUrl));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^audio\//);
    expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(100);
    await bob.page.screenshot({ path: join(SHOTS, "voice.png") });
  });

  it("shows upload progress on a slow link, then the file as a download link", { timeout: 60_000 }, async () => {
    const cdp = await alice.context.newCDPSession(alice.page);
    // 200 KB/s up: an 800 KB upload takes seconds, long enough to see the bar move.
    await cdp.send("Network.emulateNetworkConditions", {
      offline: false,
      latency: 0,
      downloadThroughput: -1,
      uploadThroughput: 200 * 1024,
    });
    try {
      const bytes = Buffer.alloc(800 * 1024, 7);
      await alice.page
        .getByTestId("file-input")
        .setInputFiles({ name: "data.bin", mimeType: "application/octet-stream", buffer: bytes });
      const bar = alice.page.getByTestId("upload-progress");
      await poll(async () => Number((await bar.getAttribute("value").catch(() => null)) ?? 0)).toBeGreaterThan(0);
      await bob.page.getByTestId("file-link").filter({ hasText: "data.bin" }).waitFor();
      await poll(() => bar.count()).toBe(0);
      expect(await bob.page.locator("img.preview").count()).toBe(1);
    } finally {
      await cdp.send("Network.emulateNetworkConditions", {
        offline: false,
        latency: 0,
        downloadThroughput: -1,
        uploadThroughput: -1,
      });
      await cdp.detach();
    }
  });

  it("a large file goes by tus, and a connection cut at half way resumes from there", { timeout: 90_000 }, async () => {
    // 8 MiB in 2 MiB chunks (web/src/session.ts), over this test's 1 MiB one-shot upload limit.
    const bytes = Buffer.alloc(8 * 1024 * 1024);
    for (let i = 0; i < bytes.length; i += 4) bytes.writeUInt32LE((i * 2654435761) >>> 0, i);
    const offsets: number[] = [];
    let cut = false;
    await alice.page.route("**/v1/files/tus/*", async (route) => {
      const request = route.request();
      if (request.method() !== "PATCH") return route.continue();
      const offset = Number(request.headers()["upload-offset"]);
      offsets.push(offset);
      // The chunk that starts half way is cut off once, as a dropped connection would.
      if (offset === bytes.length / 2 && !cut) {
        cut = true;
        return route.abort("connectionreset");
      }
      return route.continue();
    });
    try {
      await alice.page
        .getByTestId("file-input")
        .setInputFiles({ name: "big.bin", mimeType: "application/octet-stream", buffer: bytes });
      const link = bob.page.getByTestId("file-link").filter({ hasText: "big.bin" });
      await link.waitFor({ timeout: 60_000 });
      // Resumed from half way (asked of gate with HEAD), never from the start again.
      const half = bytes.length / 2;
      expect(offsets).toEqual([0, half / 2, half, half, half + half / 2]);
      const res = await fetch(new URL((await link.getAttribute("href")) ?? "", s.gateUrl));
      expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
    } finally {
      await alice.page.unroute("**/v1/files/tus/*");
    }
    // The one cut this test made is the one console error it may leave.
    const reset = problems.findIndex((p) => p.startsWith("alice console:") && p.includes("ERR_CONNECTION_RESET"));
    expect(reset).toBeGreaterThanOrEqual(0);
    problems.splice(reset, 1);
  });

  it("a group of three talks", { timeout: 90_000 }, async () => {
    carol = await user(await newContext(), "carol");
    await befriend(alice, carol);
    await alice.page.getByRole("tab", { name: "Groups" }).click();
    const create = alice.page.getByRole("form", { name: "Create a group" });
    await create.getByPlaceholder("Group name").fill("trio");
    await create.getByLabel(bob.name).check();
    await create.getByLabel(carol.name).check();
    await create.getByRole("button", { name: "Create group" }).click();
    await poll(() => alice.page.getByTestId("chat-title").textContent()).toBe("trio");
    // Nobody joins without consent: bob and carol are invited and join from the Groups tab.
    for (const other of [bob, carol]) {
      await other.page.getByRole("tab", { name: "Groups" }).click();
      await other.page.getByRole("button", { name: "Join trio" }).click();
      await poll(() => other.page.getByTestId("chat-title").textContent()).toBe("trio");
    }
    await send(alice.page, "welcome to trio");
    for (const other of [bob, carol]) {
      await openChatWith(other.page, "trio");
      await sees(other.page, "welcome to trio");
    }
    await send(carol.page, "carol says hi to the group");
    await sees(alice.page, "carol says hi to the group");
    await sees(bob.page, "carol says hi to the group");
    // A file to the group: both others get the preview.
    await carol.page
      .getByTestId("file-input")
      .setInputFiles({ name: "trio.png", mimeType: "image/png", buffer: gradientPng(40, 30) });
    for (const other of [alice, bob]) {
      await other.page.getByTestId("file-link").filter({ hasText: "trio.png" }).waitFor();
      const img = other.page.locator("img.preview").last();
      await poll(() => img.evaluate((el) => (el as HTMLImageElement).naturalWidth)).toBe(40);
    }
    await alice.page.getByRole("tab", { name: "Groups" }).click();
    await alice.page.getByTestId("group").filter({ hasText: "trio" }).getByRole("button", { name: "members" }).click();
    await poll(() => alice.page.getByTestId("member").count()).toBe(3);
    await alice.page.screenshot({ path: join(SHOTS, "groups.png") });
    // The owner hands the group to bob and is an admin from then on.
    await alice.page.getByRole("button", { name: `Make ${bob.name} the owner` }).click();
    const row = (name: string) => alice.page.getByTestId("member").filter({ hasText: name });
    await poll(() => row(bob.name).textContent()).toContain("owner");
    await poll(() => row(alice.name).textContent()).toContain("admin");
    await poll(() => alice.page.getByRole("button", { name: /^Make .* the owner$/ }).count()).toBe(0);
  });

  it("replies with a quote, reacts, edits, recalls and deletes for one side only", { timeout: 90_000 }, async () => {
    await openChatWith(alice.page, bob.name);
    await openChatWith(bob.page, alice.name);
    await send(bob.page, "can you reply to this?");
    await sees(alice.page, "can you reply to this?");

    // Reply: the actions show on hover; the bar above the composer says what is quoted.
    await act(alice.page, "can you reply to this?", "Reply");
    await poll(() => alice.page.getByTestId("replying").textContent()).toContain("can you reply to this?");
    await send(alice.page, "here is my reply");
    expect(await alice.page.getByTestId("replying").count()).toBe(0);
    await sees(bob.page, "here is my reply");
    await poll(() => bubble(bob.page, "here is my reply").getByTestId("quote").textContent()).toContain(
      "can you reply to this?",
    );

    // React: bob picks 👍, both see the chip; alice adds hers by clicking the chip.
    await act(bob.page, "here is my reply", "React");
    await bob.page.getByRole("button", { name: "React with 👍" }).click();
    const chip = (page: Page) => bubble(page, "here is my reply").getByTestId("reaction").filter({ hasText: "👍" });
    await poll(() => chip(bob.page).getAttribute("data-count")).toBe("1");
    await poll(() => chip(bob.page).getAttribute("aria-pressed")).toBe("true");
    await poll(() => chip(alice.page).getAttribute("data-count")).toBe("1");
    expect(await chip(alice.page).getAttribute("aria-pressed")).toBe("false");
    await chip(alice.page).click();
    await poll(() => chip(alice.page).getAttribute("data-count")).toBe("2");
    await poll(() => chip(alice.page).getAttribute("aria-pressed")).toBe("true");
    await poll(() => chip(bob.page).getAttribute("data-count")).toBe("2");
    // bob's own mark survives alice's reaction (a push leaves `me` to each client).
    expect(await chip(bob.page).getAttribute("aria-pressed")).toBe("true");

    // Edit: the composer takes the text; the other side sees the new one, marked edited.
    await act(alice.page, "here is my reply", "Edit");
    await alice.page.getByTestId("editing").waitFor();
    const box = alice.page.getByLabel("Message", { exact: true });
    expect(await box.inputValue()).toBe("here is my reply");
    await box.fill("here is my edited reply");
    await box.press("Enter");
    await sees(bob.page, "here is my edited reply");
    await poll(() => bubble(bob.page, "here is my edited reply").getByTestId("edited").textContent()).toContain(
      "edited",
    );
    await bubble(alice.page, "here is my edited reply").getByTestId("edited").waitFor();
    // The reactions stay with the edited message.
    await poll(() => bubble(bob.page, "here is my edited reply").getByTestId("reaction").count()).toBe(1);

    // Recall: a placeholder on both sides.
    await send(alice.page, "oops, wrong chat");
    await sees(bob.page, "oops, wrong chat");
    const seq = await bubble(alice.page, "oops, wrong chat").getAttribute("data-seq");
    await act(alice.page, "oops, wrong chat", "Recall");
    for (const page of [alice.page, bob.page]) {
      await page.locator(`.msg[data-seq="${seq}"]`).getByTestId("recalled").waitFor();
      expect(await page.getByTestId("messages").getByText("oops, wrong chat").count()).toBe(0);
    }
    await bubble(alice.page, "here is my edited reply").hover();
    await alice.page.screenshot({ path: join(SHOTS, "message-actions.png") });

    // Delete for me: gone from bob's view only.
    await send(bob.page, "only alice keeps this");
    await sees(alice.page, "only alice keeps this");
    await act(bob.page, "only alice keeps this", "Delete for me");
    await poll(() => bob.page.getByTestId("messages").getByText("only alice keeps this").count()).toBe(0);
    await alice.page.waitForTimeout(500);
    await sees(alice.page, "only alice keeps this");
    // bob's later message lands after it, in order (the seqs stay intact).
    await send(bob.page, "and this one both");
    await sees(alice.page, "and this one both");
  });

  it("shows the other side typing, and forwards a message into the group", { timeout: 90_000 }, async () => {
    // bob types without sending: alice sees it, and it goes away by itself.
    const box = bob.page.getByLabel("Message", { exact: true });
    let n = 0;
    await expect
      .poll(
        async () => {
          await box.fill(`still typing ${n++}`);
          return alice.page.getByTestId("typing").textContent();
        },
        { timeout: STEP_MS, interval: 500 },
      )
      .toBe(`${bob.name} is typing…`);
    await box.fill("");
    await poll(() => alice.page.getByTestId("typing").textContent()).toBe("");

    await act(alice.page, "can you reply to this?", "Forward");
    await alice.page.getByRole("button", { name: "Forward to trio" }).click();
    await openChatWith(carol.page, "trio");
    await sees(carol.page, "can you reply to this?");
    await poll(() => bubble(carol.page, "can you reply to this?").getByTestId("forwarded").textContent()).toBe(
      `Forwarded from ${bob.name}`,
    );
    await openChatWith(alice.page, "trio");
    await bubble(alice.page, "can you reply to this?").getByTestId("forwarded").waitFor();
  });

  it("@-completes group members, and the mentioned member's list marks the group", { timeout: 90_000 }, async () => {
    // carol looks at another conversation, so the group is not read at once.
    await carol.page.getByRole("tab", { name: /^Friends/ }).click();
    await carol.page
      .getByTestId("friend")
      .filter({ hasText: alice.name })
      .getByRole("button", { name: "Chat" })
      .click();
    await poll(() => carol.page.getByTestId("chat-title").textContent()).toBe(alice.name);

    const box = alice.page.getByLabel("Message", { exact: true });
    // alice is an admin of trio (the owner handed it to bob): she may mention everyone.
    await box.fill("@ev");
    await alice.page.getByRole("button", { name: "@everyone" }).waitFor();
    await box.fill("@ca");
    expect(await alice.page.getByRole("button", { name: "@everyone" }).count()).toBe(0);
    await alice.page.getByRole("button", { name: `@${carol.name}` }).click();
    await poll(() => box.inputValue()).toBe(`@${carol.name} `);
    await box.press("End");
    await box.pressSequentially("please look");
    await box.press("Enter");
    await sees(alice.page, `@${carol.name} please look`);

    await carol.page.getByRole("tab", { name: "Chats" }).click();
    const trio = carol.page.getByTestId("conv").filter({ hasText: "trio" });
    await trio.getByTestId("mentioned").waitFor();
    await carol.page.screenshot({ path: join(SHOTS, "mentioned.png") });
    await trio.click();
    await sees(carol.page, `@${carol.name} please look`);
    await poll(() => bubble(carol.page, `@${carol.name} please look`).getAttribute("class")).toContain("mentions-me");
    // Read: the mark is gone; a member is offered the others, not everyone.
    await poll(() => trio.getByTestId("mentioned").count()).toBe(0);
    const carolBox = carol.page.getByLabel("Message", { exact: true });
    await carolBox.fill("@");
    await carol.page.getByRole("button", { name: `@${alice.name}` }).waitFor();
    expect(await carol.page.getByRole("button", { name: "@everyone" }).count()).toBe(0);
    await carolBox.fill("");
  });

  it("works at phone width: the list, then the chat with a back button", { timeout: 60_000 }, async () => {
    const phone = await newContext({ width: 390, height: 780 });
    await phone.addInitScript(
      ([key, value]) => localStorage.setItem(key as string, value as string),
      ["shardchat.login", await bob.page.evaluate(() => localStorage.getItem("shardchat.login") ?? "")],
    );
    const page = await newPage(phone, "bob-phone");
    await page.goto(s.gateUrl);
    await poll(() => page.getByTestId("conn").getAttribute("data-state")).toBe("online");
    await openChatWith(page, alice.name);
    await sees(page, "missed two");
    await expect(page.getByRole("button", { name: "Back to conversations" }).isVisible()).resolves.toBe(true);
    await page.screenshot({ path: join(SHOTS, "phone-chat.png") });
    // The same device kind logging in again signs the older window out, with a notice.
    await bob.page.getByText("logged in elsewhere").waitFor();
    await bob.page.screenshot({ path: join(SHOTS, "logged-in-elsewhere.png") });
    bob.page = page;
    expect(problems).toEqual([]);
  });

  it("reconnects with backoff after its chat node dies, and resyncs", { timeout: 90_000 }, async () => {
    const aliceNode = s.procs.find((p) => p.name === `web-${alice.nodeId}`);
    expect(aliceNode).toBeDefined();
    await aliceNode?.stop("SIGKILL");
    await poll(() => alice.page.getByTestId("conn").getAttribute("data-state")).not.toBe("online");
    await alice.page.screenshot({ path: join(SHOTS, "reconnecting.png") });
    await send(bob.page, "sent while alice reconnects");
    await expect
      .poll(() => alice.page.getByTestId("conn").getAttribute("data-state"), { timeout: 60_000 })
      .toBe("online");
    await openChatWith(alice.page, bob.name);
    await sees(alice.page, "sent while alice reconnects");
    await send(alice.page, "back again");
    await sees(bob.page, "back again");
  });

  it("logs in with the form and loads older history as the chat scrolls up", { timeout: 60_000 }, async () => {
    const [dave, erin] = [await s.register("dave"), await s.register("erin")];
    const daveChat = await openChat(await s.gate.login("dave", dave.password), "ws");
    for (let i = 1; i <= 45; i++) await daveChat.sendText(erin.uid, `history ${i}`);
    await daveChat.close();
    // erin has received (and acked) them all elsewhere: only history can show them now.
    const erinChat = await openChat(await s.gate.login("erin", erin.password), "ws");
    expect(await erinChat.syncAll()).toHaveLength(45);
    await erinChat.close();

    const page = await newPage(await newContext(), "erin");
    await page.goto(s.gateUrl);
    const login = page.getByRole("form", { name: "Log in" });
    await login.getByLabel("User name or email").fill("erin@example.test");
    await login.getByLabel("Password").fill(erin.password);
    await login.getByRole("button", { name: "Log in" }).click();
    await openChatWith(page, "dave");
    await sees(page, "history 45");
    // The newest page only: the oldest messages come with scrolling.
    await poll(() => page.locator(".msg").count()).toBeGreaterThanOrEqual(30);
    expect(await page.locator(".msg").count()).toBeLessThan(45);
    expect(await page.getByTestId("messages").getByText("history 1", { exact: true }).count()).toBe(0);
    await page.getByTestId("messages").evaluate((el) => {
      el.scrollTop = 0;
    });
    await sees(page, "history 1");
    await page.getByText("start of the conversation").waitFor();
    expect(await page.locator(".msg").count()).toBe(45);
  });

  it("resets a password with a mailed code and logs in with the new one", { timeout: 60_000 }, async () => {
    const page = await newPage(await newContext(), "carol-reset");
    await page.goto(s.gateUrl);
    await page.getByRole("tab", { name: "Reset password" }).click();
    const form = page.getByRole("form", { name: "Reset password" });
    await form.getByLabel("Email", { exact: true }).fill("carol@example.test");
    // Carol's registration code may still be cooling down: the button says when it may be asked again.
    await poll(() => form.getByTestId("send-code").isEnabled()).toBe(true);
    await form.getByTestId("send-code").click();
    const code = codeFromMail(await s.smtp.waitForMail("carol@example.test"));
    await form.getByLabel("Code from the email").fill(code);
    await form.getByLabel("New password").fill("a-brand-new-password");
    await page.screenshot({ path: join(SHOTS, "reset-password.png") });
    await form.getByRole("button", { name: "Set new password" }).click();
    await page.getByText("Password changed").waitFor();
    const login = page.getByRole("form", { name: "Log in" });
    await login.getByLabel("Password").fill("pw-carol-secret");
    await login.getByRole("button", { name: "Log in" }).click();
    await page.getByText("Wrong user, email or password.").waitFor();
    await login.getByLabel("Password").fill("a-brand-new-password");
    await login.getByRole("button", { name: "Log in" }).click();
    await poll(() => page.getByTestId("conn").getAttribute("data-state")).toBe("online");
    await poll(() => page.getByTestId("conv").filter({ hasText: "trio" }).count()).toBe(1);
  });

  // ---- Safety and conversation management (issue 17).

  it("blocks from the chat header: the blocked user's message is refused with a notice; unblocking restores it", {
    timeout: 120_000,
  }, async () => {
    // Desktop windows again: bob's phone window and carol's reset window are signed out by these.
    await logIn(bob);
    await logIn(carol, "a-brand-new-password");
    await carol.page.getByLabel("Find a user by name, email or uid").fill(bob.name);
    await carol.page.getByRole("button", { name: "Find" }).click();
    await carol.page.getByRole("button", { name: new RegExp(`^${bob.name} `) }).click();
    await send(carol.page, "hi bob, carol here");
    await openChatWith(bob.page, carol.name);
    await sees(bob.page, "hi bob, carol here");

    await bob.page.getByRole("button", { name: "Conversation options" }).click();
    await bob.page.getByRole("button", { name: "Block user", exact: true }).click();
    // The blocker's composer gives way to the block, with a way back.
    await bob.page.getByTestId("blocked-bar").waitFor();
    expect(await bob.page.getByLabel("Message", { exact: true }).count()).toBe(0);

    const box = carol.page.getByLabel("Message", { exact: true });
    await box.fill("are you there?");
    await box.press("Enter");
    await poll(() => carol.page.getByTestId("chat-notice").textContent()).toBe("You can't message this user");
    await poll(() => bubble(carol.page, "are you there?").locator(".mark").getAttribute("data-mark")).toBe("failed");
    await bob.page.waitForTimeout(500);
    expect(await bob.page.getByTestId("messages").getByText("are you there?").count()).toBe(0);

    // The Friends tab lists whom bob blocked; unblocking there opens the conversation again.
    await bob.page.getByRole("tab", { name: /^Friends/ }).click();
    const blocked = bob.page.getByRole("list", { name: "Blocked users" });
    await blocked.getByTestId("blocked-user").filter({ hasText: carol.name }).waitFor();
    await blocked.getByRole("button", { name: `Unblock ${carol.name}`, exact: true }).click();
    await poll(() => blocked.getByTestId("blocked-user").count()).toBe(0);
    await poll(() => bob.page.getByTestId("blocked-bar").count()).toBe(0);
    await send(carol.page, "and now?");
    await sees(bob.page, "and now?");
    await poll(() => carol.page.getByTestId("chat-notice").count()).toBe(0);
  });

  it("an admin mutes a member: its composer closes at once, the admin's post goes through; the announcement shows on top", {
    timeout: 120_000,
  }, async () => {
    // In trio bob is the owner, alice an admin, carol a member.
    await openChatWith(carol.page, "trio");
    await openChatWith(alice.page, "trio");
    const panel = await membersOf(alice, "trio");

    await panel.getByLabel("Announcement").fill("Be kind: no spoilers");
    await panel.getByRole("button", { name: "Set announcement" }).click();
    for (const other of [carol, alice]) {
      await poll(() => other.page.getByTestId("announcement").textContent()).toContain("Be kind: no spoilers");
    }

    await panel.getByLabel(`Mute ${carol.name} for`, { exact: true }).selectOption({ label: "1 hour" });
    await panel.getByRole("button", { name: `Mute ${carol.name}`, exact: true }).click();
    await panel.getByTestId("member").filter({ hasText: carol.name }).getByTestId("member-muted").waitFor();
    // The end's time, after its date when that is not today (an hour's mute set after 23:00).
    await poll(() => carol.page.getByTestId("composer-off").textContent()).toMatch(
      /^You are muted until ([A-Z][a-z]{2} \d{1,2}, )?\d{1,2}:\d{2}/,
    );
    expect(await carol.page.getByLabel("Message", { exact: true }).isDisabled()).toBe(true);
    await alice.page.screenshot({ path: join(SHOTS, "moderation.png") });

    await alice.page.getByRole("tab", { name: "Chats" }).click();
    await send(alice.page, "admins can still post");
    await sees(carol.page, "admins can still post");

    const again = await membersOf(alice, "trio");
    await again.getByRole("button", { name: `Unmute ${carol.name}`, exact: true }).click();
    await poll(() => carol.page.getByTestId("composer-off").count()).toBe(0);
    await send(carol.page, "thanks for unmuting me");
    await sees(alice.page, "thanks for unmuting me");

    // Everyone muted: only admins and the owner post.
    await again.getByLabel("Mute everyone").check();
    await poll(() => carol.page.getByTestId("composer-off").textContent()).toBe("Only admins can post now");
    expect(await alice.page.getByTestId("composer-off").count()).toBe(0);
    await again.getByLabel("Mute everyone").uncheck();
    await poll(() => carol.page.getByTestId("composer-off").count()).toBe(0);
  });

  it("pins, mutes and hides conversations: pinned first, hidden until the next message", {
    timeout: 90_000,
  }, async () => {
    await alice.page.getByRole("tab", { name: "Chats" }).click();
    const first = alice.page.getByTestId("conv").first();
    await poll(() => first.textContent()).toContain("trio");
    await alice.page.getByRole("button", { name: `Options for ${bob.name}`, exact: true }).click();
    await alice.page.getByRole("button", { name: "Pin conversation" }).click();
    await poll(() => first.textContent()).toContain(bob.name);
    await first.getByTestId("pinned").waitFor();
    await alice.page.getByRole("button", { name: "Options for trio", exact: true }).click();
    await alice.page.getByRole("button", { name: "Mute notifications" }).click();
    await alice.page.getByTestId("conv").filter({ hasText: "trio" }).getByTestId("muted").waitFor();
    await alice.page.screenshot({ path: join(SHOTS, "pinned.png") });

    // Hidden: gone from the list until bob writes again; it comes back pinned.
    await alice.page.getByRole("button", { name: `Options for ${bob.name}`, exact: true }).click();
    await alice.page.getByRole("button", { name: "Hide conversation" }).click();
    await poll(() => alice.page.getByTestId("conv").filter({ hasText: bob.name }).count()).toBe(0);
    await openChatWith(bob.page, alice.name);
    await send(bob.page, "anyone home?");
    await poll(() => first.textContent()).toContain(bob.name);
    await first.getByTestId("pinned").waitFor();
    await poll(() => first.getByTestId("unread").textContent()).toBe("1");

    // alice's desktop app unpins it: this window follows the push.
    const desktop = await openChat(await s.gate.login(alice.name, alice.password), "tcp");
    try {
      const convId = (await first.getAttribute("data-conv")) ?? "";
      expect(convId).toMatch(/^p:/);
      await desktop.conversationSettings(convId, { pinned: false });
      await poll(() => alice.page.getByTestId("pinned").count()).toBe(0);
    } finally {
      await desktop.close();
    }
  });

  it("clears the history for one side: the chat empties for the clearer, the other keeps it", {
    timeout: 90_000,
  }, async () => {
    await openChatWith(alice.page, bob.name);
    await sees(alice.page, "anyone home?");
    await alice.page.getByRole("button", { name: "Conversation options" }).click();
    await alice.page.getByRole("button", { name: "Clear history" }).click();
    await alice.page.getByRole("button", { name: "Clear for me" }).click();
    await poll(() => alice.page.locator(".msg").count()).toBe(0);
    await alice.page.getByText("earlier messages were cleared").waitFor();
    await sees(bob.page, "anyone home?");
    expect(await bob.page.locator(".msg").count()).toBeGreaterThan(5);

    // The chat starts again after the cleared part, here and after a reload.
    await send(bob.page, "after your clear");
    await sees(alice.page, "after your clear");
    expect(await alice.page.locator(".msg").count()).toBe(1);
    await alice.page.reload();
    await poll(() => alice.page.getByTestId("conn").getAttribute("data-state")).toBe("online");
    await openChatWith(alice.page, bob.name);
    await sees(alice.page, "after your clear");
    await alice.page.getByText("earlier messages were cleared").waitFor();
    expect(await alice.page.locator(".msg").count()).toBe(1);
  });

  it("asks to join a group that requires approval; the owner approves; the account is then deleted", {
    timeout: 120_000,
  }, async () => {
    const panel = await membersOf(bob, "trio");
    await panel.getByLabel("Require approval to join").check();
    const groupId = (await panel.getByTestId("group-id").textContent()) ?? "";
    expect(groupId).toMatch(/^\d+$/);

    const frank = await s.register("frank");
    const page = await newPage(await newContext(), "frank");
    await page.goto(s.gateUrl);
    const login = page.getByRole("form", { name: "Log in" });
    await login.getByLabel("User name or email").fill("frank");
    await login.getByLabel("Password").fill(frank.password);
    await login.getByRole("button", { name: "Log in" }).click();
    await poll(() => page.getByTestId("conn").getAttribute("data-state")).toBe("online");
    await page.getByRole("tab", { name: "Groups" }).click();
    await page.getByText("Join a group by its id").click();
    const ask = page.getByRole("form", { name: "Ask to join a group" });
    await ask.getByLabel("Group id").fill(groupId);
    await ask.getByLabel("Message to the group's admins").fill("frank would like in");
    await ask.getByRole("button", { name: "Ask to join" }).click();
    await page.getByText("Request sent").waitFor();

    // The owner is told at once, and approves from the members panel.
    await bob.page.getByText("frank asks to join trio").waitFor();
    const request = panel.getByTestId("join-request").filter({ hasText: "frank would like in" });
    await request.getByRole("button", { name: "Approve frank" }).click();
    await page.getByText("You joined trio").waitFor();
    await page.getByTestId("group").filter({ hasText: "trio" }).waitFor();
    await panel.getByTestId("member").filter({ hasText: "frank" }).waitFor();

    // The account area deletes the account with the password, and goes back to the login screen.
    await page.getByRole("tab", { name: "Account" }).click();
    const form = page.getByRole("form", { name: "Delete account" });
    await form.getByLabel("Password").fill("not-the-password");
    await form.getByRole("button", { name: "Delete account", exact: true }).click();
    await form.getByRole("button", { name: "Yes, delete my account" }).click();
    await form.getByText("Wrong password.").waitFor();
    await form.getByLabel("Password").fill(frank.password);
    await form.getByRole("button", { name: "Delete account", exact: true }).click();
    await form.getByRole("button", { name: "Yes, delete my account" }).click();
    await page.getByText("Your account was deleted.").waitFor();
    await login.getByLabel("User name or email").fill("frank");
    await login.getByLabel("Password").fill(frank.password);
    await login.getByRole("button", { name: "Log in" }).click();
    await page.getByText("Wrong user, email or password.").waitFor();
  });

  it("the owner dissolves the group: the members see it dissolved, with no composer", { timeout: 90_000 }, async () => {
    await openChatWith(alice.page, "trio");
    await sees(alice.page, "thanks for unmuting me");
    const panel = await membersOf(bob, "trio");
    await panel.getByRole("button", { name: "Dissolve group" }).click();
    await panel.getByRole("button", { name: "Dissolve for good" }).click();
    await poll(() => alice.page.getByTestId("composer-off").textContent()).toBe("This group was dissolved");
    expect(await alice.page.getByLabel("Message", { exact: true }).count()).toBe(0);
    // Its history stays readable, and the group leaves the group list.
    await sees(alice.page, "thanks for unmuting me");
    await alice.page.getByRole("tab", { name: "Groups" }).click();
    await poll(() => alice.page.getByTestId("group").filter({ hasText: "trio" }).count()).toBe(0);
  });
});

/** A width×height RGB PNG with a colour gradient: something to see in the preview. */
function gradientPng(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const out = Buffer.alloc(body.length + 8);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc32(body), body.length + 4);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8);
  const rows = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const at = y * (width * 3 + 1) + 1 + x * 3;
      rows.set([Math.round((255 * x) / width), Math.round((255 * y) / height), 200], at);
    }
  }
  return Buffer.concat([
    Buffer.from("89504e470d0a1a0a", "hex"),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(rows)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}
