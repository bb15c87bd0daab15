import { afterAll, describe, expect, it } from "vitest";
import { MessageKind } from "../packages/protocol/src/wire.js";
import { convIdForPair, type Uid, uidOf } from "../src/ids/identifiers.js";
import type { FileMeta } from "../src/storage/ports.js";
import { contractBackends, type OpenedBackend } from "./helpers/backends.js";

/** Files' metadata and conversation membership, the two things gate asks storage about files. */
const backends = contractBackends({ tag: "sc-files-" });

const opened: OpenedBackend[] = [];
afterAll(async () => {
  for (const o of opened) await o.close();
});

let nextId = 700_000_000_000_000_000n;
const newId = () => uidOf(nextId++);

describe.each(backends)("$name file metadata and membership", (backend) => {
  let s: OpenedBackend;

  // Opening the sharded backend may first start the stack's MariaDB instances.
  it("stores a file's metadata and finds it by id; unknown and malformed ids answer null", {
    timeout: 300_000,
  }, async () => {
    s = await backend.open();
    opened.push(s);
    const meta: FileMeta = {
      id: newId(),
      owner: "18446744073709551615",
      convId: convIdForPair("5", "18446744073709551615"),
      name: "Ünïcode report.pdf",
      size: 123_456,
      contentType: "application/pdf",
      createdAt: 1_700_000_000_000,
    };
    await s.files.create(meta);
    expect(await s.files.byId(meta.id)).toEqual(meta);
    expect(await s.files.byId(newId())).toBeNull();
    expect(await s.files.byId("not-a-number")).toBeNull();
    if (s.holders && s.ownerOf) {
      // Placed by file id: exactly one instance holds the row, the one its id's slot maps to.
      expect(await s.holders("SELECT 1 FROM files WHERE file_id = ?", [meta.id])).toEqual([
        s.ownerOf(`file:${meta.id}`),
      ]);
    }
  });

  it("sweeps uploads no message named before the cutoff, and keeps sent or newer ones", async () => {
    const file = (createdAt: number): FileMeta => ({
      id: newId(),
      owner: "5",
      convId: convIdForPair("5", "6"),
      name: "f.txt",
      size: 1,
      contentType: "text/plain",
      createdAt,
    });
    const [oldUnsent, oldSent, newUnsent, alsoOld] = [file(1000), file(1100), file(5000), file(1200)];
    for (const f of [oldUnsent, oldSent, newUnsent, alsoOld]) await s.files.create(f);
    expect(await s.files.markSent(oldSent.id, 3000)).toBe(true);
    expect(await s.files.markSent(oldSent.id, 4000)).toBe(true); // named again: still there
    // At most `limit` a round; the rest goes in the next.
    const first = await s.files.sweepUnsent(2000, 1);
    const second = await s.files.sweepUnsent(2000, 10);
    expect([...first, ...second].sort()).toEqual([oldUnsent.id, alsoOld.id].sort());
    expect(first).toHaveLength(1);
    expect(await s.files.sweepUnsent(2000, 10)).toEqual([]);
    expect(await s.files.byId(oldUnsent.id)).toBeNull();
    expect(await s.files.byId(oldSent.id)).not.toBeNull();
    expect(await s.files.byId(newUnsent.id)).not.toBeNull();
    // A message may not name a swept file: marking it answers false.
    expect(await s.files.markSent(oldUnsent.id, 6000)).toBe(false);
    expect(await s.files.markSent("not-a-number", 6000)).toBe(false);
  });

  const fileOf = (owner: Uid, size: number, createdAt = 1_700_000_000_000): FileMeta => ({
    id: newId(),
    owner,
    convId: convIdForPair(owner, "6"),
    name: "f.bin",
    size,
    contentType: "application/octet-stream",
    createdAt,
  });

  it("answers a user's usage: the bytes of all its stored files, on whatever instance each is (issue 19)", async () => {
    const [owner, other] = [newId(), newId()];
    expect(await s.files.usageOf(owner)).toBe(0);
    // Enough files that, sharded, they land on several instances; one over 4 GiB (BIGINT sizes).
    const sizes = [1, 10, 100, 1_000, 10_000, 100_000, 5_000_000_000];
    const files = sizes.map((size) => fileOf(owner, size));
    for (const f of files) await s.files.create(f);
    await s.files.create(fileOf(other, 7));
    if (s.holders) {
      const holders = new Set<string>();
      for (const f of files)
        for (const h of await s.holders("SELECT 1 FROM files WHERE file_id = ?", [f.id])) holders.add(h);
      expect(holders.size).toBeGreaterThan(1);
    }
    const total = sizes.reduce((a, b) => a + b, 0);
    expect(await s.files.usageOf(owner)).toBe(total);
    expect(await s.files.usageOf(other)).toBe(7);
    expect(await s.files.usageOf("not-a-uid" as Uid)).toBe(0);
    // Sent or not, released or not: stored until swept.
    const [first] = files as [FileMeta];
    expect(await s.files.markSent(first.id, 1)).toBe(true);
    expect(await s.files.release(first.id, 2)).toBe(true);
    expect(await s.files.usageOf(owner)).toBe(total);
    expect(await s.files.sweepReleased(100)).toEqual([first.id]);
    expect(await s.files.usageOf(owner)).toBe(total - first.size);
  });

  it("records direct uploads started, forgets completed ones, and sweeps the abandoned (issue 19)", async () => {
    const owner = newId();
    const [abandoned, completed, recent, alsoOld] = [newId(), newId(), newId(), newId()];
    await s.files.startPending(abandoned, owner, 300, 1000);
    await s.files.startPending(completed, owner, 5, 1100);
    await s.files.startPending(recent, owner, 40, 5000);
    await s.files.startPending(alsoOld, owner, 5, 1200);
    // Started and not completed, each reserves its declared size in the quota.
    expect(await s.files.usageOf(owner)).toBe(350);
    if (s.holders && s.ownerOf) {
      expect(await s.holders("SELECT 1 FROM pending_uploads WHERE file_id = ?", [abandoned])).toEqual([
        s.ownerOf(`file:${abandoned}`),
      ]);
    }
    await s.files.create({ ...fileOf(owner, 5, 1100), id: completed });
    await s.files.completePending(completed);
    await s.files.completePending(completed); // idempotent
    // Completed: counted once, as its file.
    expect(await s.files.usageOf(owner)).toBe(350);
    // The files row stored, its pending row left (a completion that failed half-way): swept, not answered.
    await s.files.create({ ...fileOf(owner, 5, 1200), id: alsoOld });
    const first = await s.files.sweepPending(2000, 1);
    const second = await s.files.sweepPending(2000, 10);
    expect(first).toHaveLength(1);
    expect([...first, ...second]).toEqual([abandoned]);
    expect(await s.files.sweepPending(2000, 10)).toEqual([]);
    expect(await s.files.byId(alsoOld)).not.toBeNull();
    expect(await s.files.sweepPending(6000, 10)).toEqual([recent]);
    // Swept: the reservations are gone; the two files stay.
    expect(await s.files.usageOf(owner)).toBe(10);
  });

  it("releases a file when the last message naming it goes, never a forwarded one, and sweeps it (issue 19)", async () => {
    const owner = newId();
    const [once, twice, shared, unsent] = [fileOf(owner, 1), fileOf(owner, 2), fileOf(owner, 3), fileOf(owner, 4)];
    for (const f of [once, twice, shared, unsent]) await s.files.create(f);
    expect(await s.files.markSent(once.id, 10)).toBe(true);
    expect(await s.files.markSent(twice.id, 10)).toBe(true);
    expect(await s.files.markSent(twice.id, 11)).toBe(true);
    expect(await s.files.markSent(shared.id, 10)).toBe(true);
    expect(await s.files.share(shared.id, convIdForPair("8", "9"))).toBe(true);

    expect(await s.files.release(once.id, 20)).toBe(true);
    // Released: as good as gone, and no message may name it again.
    expect(await s.files.byId(once.id)).toBeNull();
    expect(await s.files.markSent(once.id, 21)).toBe(false);
    expect(await s.files.share(once.id, convIdForPair("8", "9"))).toBe(false);
    expect(await s.files.release(once.id, 22)).toBe(false);
    // Two messages named it: the first recall keeps it.
    expect(await s.files.release(twice.id, 20)).toBe(false);
    expect(await s.files.byId(twice.id)).not.toBeNull();
    expect(await s.files.release(shared.id, 20)).toBe(false);
    expect(await s.files.release(shared.id, 20)).toBe(false);
    expect(await s.files.byId(shared.id)).not.toBeNull();
    expect(await s.files.release(newId(), 20)).toBe(false);
    expect(await s.files.release("not-a-number", 20)).toBe(false);

    expect(await s.files.release(twice.id, 30)).toBe(true);
    const first = await s.files.sweepReleased(1);
    const rest = await s.files.sweepReleased(10);
    expect(first).toHaveLength(1);
    expect([...first, ...rest].sort()).toEqual([once.id, twice.id].sort());
    expect(await s.files.sweepReleased(10)).toEqual([]);
    expect(await s.files.usageOf(owner)).toBe(shared.size + unsent.size);
    expect(await s.files.byId(shared.id)).not.toBeNull();
  });

  it("answers isMember from a conversation's member rows", async () => {
    const [a, b, c] = [newId(), newId(), newId()];
    const convId = convIdForPair(a, b);
    expect(await s.messages.isMember(convId, a)).toBe(false);
    await s.messages.append({
      convId,
      members: [a, b],
      msgId: newId(),
      sender: a,
      recipient: b,
      clientMsgId: "m1",
      kind: MessageKind.TEXT,
      text: "hi",
      sentAtMs: 1,
    });
    expect(await s.messages.isMember(convId, a)).toBe(true);
    expect(await s.messages.isMember(convId, b)).toBe(true);
    expect(await s.messages.isMember(convId, c)).toBe(false);
    expect(await s.messages.isMember("g:unknown", a)).toBe(false);
    expect(await s.messages.isMember(convId, "x" as Uid)).toBe(false);
  });

  it("keeps an image's dimensions and thumbnail, and a recording's duration (issue 19)", async () => {
    const image: FileMeta = {
      id: newId(),
      owner: newId(),
      convId: convIdForPair("7", "8"),
      name: "photo.jpg",
      size: 4_000_000,
      contentType: "image/jpeg",
      createdAt: 1_700_000_000_001,
      media: {
        width: 4032,
        height: 3024,
        durationMs: 0,
        thumbnail: { width: 320, height: 240, size: "9876", contentType: "image/webp" },
      },
    };
    const voice: FileMeta = {
      ...image,
      id: newId(),
      name: "voice.webm",
      contentType: "audio/webm",
      media: { width: 0, height: 0, durationMs: 12_345 },
    };
    await s.files.create(image);
    await s.files.create(voice);
    expect(await s.files.byId(image.id)).toEqual(image);
    expect(await s.files.byId(voice.id)).toEqual(voice);
  });

  it("keeps a file message's reference through append, history and sync", async () => {
    const [a, b] = [newId(), newId()];
    const convId = convIdForPair(a, b);
    const file = {
      id: newId(),
      name: "cat.png",
      size: "2048",
      contentType: "image/png",
      // What gate read on upload rides in the message's reference (issue 19).
      media: {
        width: 64,
        height: 48,
        durationMs: 0,
        thumbnail: { width: 64, height: 48, size: "310", contentType: "image/webp" },
      },
    };
    const { message } = await s.messages.append({
      convId,
      members: [a, b],
      msgId: newId(),
      sender: a,
      recipient: b,
      clientMsgId: "f1",
      kind: MessageKind.FILE,
      text: "",
      sentAtMs: 2,
      file,
    });
    expect(message.file).toEqual(file);
    expect(message.kind).toBe(MessageKind.FILE);
    const [stored] = await s.messages.history(b, convId, { afterSeq: 0, beforeSeq: 0, limit: 10 });
    expect(stored?.file).toEqual(file);
    const pending = await s.messages.pending(b, 10);
    expect(pending.messages.find((m) => m.convId === convId)?.file).toEqual(file);
  });
});
