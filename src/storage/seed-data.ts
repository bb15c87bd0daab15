import { convIdForPair, groupConvId } from "../ids/identifiers.js";
import type { IdGenerator } from "../ids/ports.js";
import type {
  BulkImporter,
  GroupStore,
  ImportedConversation,
  MessageStore,
  Uid,
  UserRecord,
  UserStore,
} from "./ports.js";

/** Users per bulk import (each a few multi-row statements per shard). */
const USERS_PER_IMPORT = 5000;

/** messages.kind of a text message (the wire's MESSAGE_KIND_TEXT). */
const TEXT = 1;

export interface SeedOptions {
  users: number;
  messages: number;
  groups: number;
  /** Members of each group, the creator included (capped at users). */
  groupSize: number;
  /** Share of the messages posted to groups (0..1) when there are groups. */
  groupShare: number;
  /** Appends in flight at once on the live path (the stores' group commit forms batches from them). */
  concurrency: number;
  /** Messages per bulk batch when the storage has a BulkImporter. */
  bulkBatch?: number;
  /** The password hash every seeded user gets (one scrypt, not one per user). */
  passwordHash: string;
  /** Prefix of the users' names, so runs do not collide ("seed_<run>_<i>"). */
  run: string;
  onProgress?: (done: { users: number; messages: number }) => void;
}

export interface SeedReport {
  users: Uid[];
  groupIds: string[];
  messages: number;
  conversations: number;
  seconds: number;
}

/** A small deterministic PRNG (mulberry32): the same run name makes the same conversations. */
function random(seedText: string): () => number {
  let a = [...seedText].reduce((h, c) => Math.imul(h ^ c.charCodeAt(0), 2654435761), 1779033703) >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A chat-like text: a few words, of a length that varies as real messages do. */
function text(next: () => number, i: number): string {
  const words = [
    "ok",
    "see you",
    "lunch?",
    "on my way",
    "thanks!",
    "the build is green",
    "meeting at 3",
    "lol",
    "sure",
  ];
  const n = 1 + Math.floor(next() * 6);
  return `${Array.from({ length: n }, () => words[Math.floor(next() * words.length)]).join(" ")} #${i}`;
}

/** Runs tasks with at most `limit` in flight. */
async function inParallel(count: number, limit: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, count)) }, worker));
}

/**
 * Fills storage with realistic conversations through the stores' own write paths (users, the
 * group commit of appends, group creation), not the chat protocol: each user talks mostly to a
 * small circle of contacts (as people do), some messages go to groups, texts vary in length.
 * Every message is stored as the chat node would store it (seqs gapless per conversation).
 */
export async function seedData(
  stores: { users: UserStore; messages: MessageStore; groups?: GroupStore; bulk?: BulkImporter },
  ids: IdGenerator,
  o: SeedOptions,
): Promise<SeedReport> {
  const started = Date.now();
  const next = random(o.run);
  const users: Uid[] = Array.from({ length: o.users }, () => ids.next());
  const userRecord = (i: number): UserRecord => ({
    uid: users[i] as Uid,
    name: `seed_${o.run}_${i}`,
    email: `seed_${o.run}_${i}@example.test`,
    passwordHash: o.passwordHash,
    createdAt: Date.now(),
  });
  if (stores.bulk) {
    for (let i = 0; i < users.length; i += USERS_PER_IMPORT) {
      const count = Math.min(USERS_PER_IMPORT, users.length - i);
      await stores.bulk.importUsers(Array.from({ length: count }, (_, k) => userRecord(i + k)));
      o.onProgress?.({ users: i + count, messages: 0 });
    }
  } else {
    await inParallel(users.length, o.concurrency, async (i) => {
      await stores.users.create(userRecord(i));
      if (i % 1000 === 999) o.onProgress?.({ users: i + 1, messages: 0 });
    });
  }

  const groupIds: string[] = [];
  const members = new Map<string, Uid[]>();
  if (stores.groups && o.groups > 0 && users.length > 1) {
    const groups = stores.groups;
    for (let g = 0; g < o.groups; g++) {
      const size = Math.max(2, Math.min(o.groupSize, users.length));
      const start = Math.floor(next() * users.length);
      const chosen = Array.from({ length: size }, (_, k) => users[(start + k) % users.length] as Uid);
      const [owner, ...rest] = chosen as [Uid, ...Uid[]];
      const group = await groups.create({
        groupId: ids.next(),
        name: `seed ${g}`,
        owner,
        members: rest,
        maxMembers: size,
      });
      groupIds.push(group.groupId);
      members.set(group.groupId, chosen);
    }
  }

  // A user's circle: the next few users after it (wrapping), so pairs repeat as in real chat.
  const circle = Math.max(1, Math.min(8, users.length - 1));
  const groupShare = groupIds.length > 0 ? o.groupShare : 0;
  /** The conversation and sender of message i, drawn as a chat's traffic would be. */
  const pick = (): { groupId?: string; sender: Uid; recipient?: Uid } => {
    if (next() < groupShare) {
      const groupId = groupIds[Math.floor(next() * groupIds.length)] as string;
      const inGroup = members.get(groupId) as Uid[];
      return { groupId, sender: inGroup[Math.floor(next() * inGroup.length)] as Uid };
    }
    const from = Math.floor(next() * users.length);
    const to = (from + 1 + Math.floor(next() * circle)) % users.length;
    return { sender: users[from] as Uid, recipient: users[to] as Uid };
  };
  const conversations = new Set<string>();
  let stored = 0;
  if (users.length < 2) {
    // Nobody to talk to.
  } else if (stores.bulk) {
    const bulk = stores.bulk;
    const perBatch = Math.max(1, o.bulkBatch ?? 20_000);
    const batch = (b: number): ImportedConversation[] => {
      const convs = new Map<string, ImportedConversation>();
      const count = Math.min(perBatch, o.messages - b * perBatch);
      for (let k = 0; k < count; k++) {
        const i = b * perBatch + k;
        const { groupId, sender, recipient } = pick();
        const convId = groupId ? groupConvId(groupId) : convIdForPair(sender, recipient as Uid);
        let conv = convs.get(convId);
        if (!conv) {
          const everyone = groupId ? (members.get(groupId) as Uid[]) : [sender, recipient as Uid];
          conv = { convId, kind: groupId ? 2 : 1, members: everyone, messages: [] };
          convs.set(convId, conv);
        }
        conv.messages.push({
          msgId: ids.next(),
          sender,
          recipient: recipient ?? "0",
          clientMsgId: `seed-${o.run}-${i}`,
          kind: TEXT,
          text: text(next, i),
          sentAtMs: Date.now(),
        });
        conversations.add(convId);
      }
      return [...convs.values()];
    };
    // One batch imported at a time (each is already one transaction per instance, the instances
    // at once: concurrent batches on one instance meet on the members' gap locks and deadlock);
    // the next batch is made while the last one is written.
    let writing: Promise<void> = Promise.resolve();
    for (let b = 0; b * perBatch < o.messages; b++) {
      const convs = batch(b);
      await writing;
      writing = bulk.importHistory(convs).then(() => {
        stored += convs.reduce((n, c) => n + c.messages.length, 0);
        o.onProgress?.({ users: users.length, messages: stored });
      });
    }
    await writing;
  } else {
    await inParallel(o.messages, o.concurrency, async (i) => {
      const sentAtMs = Date.now();
      const { groupId, sender, recipient } = pick();
      if (groupId && stores.groups) {
        await stores.groups.append({
          groupId,
          msgId: ids.next(),
          sender,
          clientMsgId: `seed-${o.run}-${i}`,
          kind: TEXT,
          text: text(next, i),
          sentAtMs,
        });
        conversations.add(groupConvId(groupId));
      } else if (recipient) {
        const convId = convIdForPair(sender, recipient);
        await stores.messages.append({
          convId,
          members: [sender, recipient],
          msgId: ids.next(),
          sender,
          recipient,
          clientMsgId: `seed-${o.run}-${i}`,
          kind: TEXT,
          text: text(next, i),
          sentAtMs,
        });
        conversations.add(convId);
      }
      stored++;
      if (stored % 10_000 === 0) o.onProgress?.({ users: users.length, messages: stored });
    });
  }
  return {
    users,
    groupIds,
    messages: stored,
    conversations: conversations.size,
    seconds: (Date.now() - started) / 1000,
  };
}
