import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MessageKind } from "../packages/protocol/src/wire.js";
import { type AppError, ErrorCode } from "../src/errors.js";
import { convIdForPair, groupConvId, uidOf } from "../src/ids/identifiers.js";
import type { MessageChange, MessageEffect, MessageExtras, Uid } from "../src/storage/ports.js";
import { SqliteConversationStore } from "../src/storage/sqlite/conversation-store.js";
import { SqliteGroupStore } from "../src/storage/sqlite/group-store.js";
import { SqliteMessageStore } from "../src/storage/sqlite/message-store.js";
import { textMessage } from "./helpers/messages.js";
import { type TempSqlite, tempSqlite } from "./helpers/sqlite.js";

/**
 * The message model's SQLite-only behaviour; the contract every backend keeps is in
 * message-model.test.ts.
 */

// Snowflake-sized ids (> 2^53) so a lossy number conversion would show.
let next = 910_000_000_000_000_000n;
const id = () => uidOf(next++);

let sqlite: TempSqlite;
let messages: SqliteMessageStore;

beforeAll(() => {
  sqlite = tempSqlite("sc-model-sqlite-");
  messages = new SqliteMessageStore(sqlite.db);
});
afterAll(() => sqlite.remove());

function send(sender: Uid, to: Uid, text: string, extras?: MessageExtras) {
  const ids = { msgId: id(), clientMsgId: `c-${id()}`, sentAtMs: 1_700_000_000_000 };
  return messages.append({ ...textMessage(sender, to, text, ids), extras });
}

function change(convId: string, actor: string, targetSeq: number, effect: MessageEffect | null): MessageChange {
  return { convId, targetSeq, msgId: id(), actor: actor as Uid, sentAtMs: 1_700_000_000_500, decide: () => effect };
}

const react = (emoji: string, maxDistinct = 10): MessageEffect => ({ kind: "react", emoji, add: true, maxDistinct });

describe("SQLite message model", () => {
  it("stores NULL extras for a plain message, the extras' JSON (without the quote's snippet) otherwise", async () => {
    const [a, b] = [id(), id()];
    const convId = convIdForPair(a, b);
    const { message: plain } = await send(a, b, "plain");
    const reply = { seq: 1, msgId: plain.msgId, sender: a, kind: MessageKind.TEXT, snippet: "plain", recalled: false };
    await send(b, a, "re", { reply });
    const rows = sqlite.db.prepare("SELECT extras_json FROM messages WHERE conv_id = ? ORDER BY seq").all(convId);
    expect(rows).toEqual([
      { extras_json: null },
      { extras_json: JSON.stringify({ reply: { seq: 1, msgId: plain.msgId, sender: a, kind: MessageKind.TEXT } }) },
    ]);
  });

  it("commits appends and changes of one turn together, in call order: a refused change takes no seq", async () => {
    const [a, b] = [id(), id()];
    const convId = convIdForPair(a, b);
    await send(a, b, "target");
    const results = await Promise.allSettled([
      send(a, b, "m1"),
      messages.change(change(convId, b, 1, react("👍"))),
      messages.change(change(convId, b, 1, react("😂", 1))),
      send(b, a, "m2"),
      messages.change(change(convId, a, 1, { kind: "edit", text: "t2", atMs: 1 })),
    ]);
    const seqs = results.map((r) => {
      if (r.status === "rejected") return (r.reason as AppError).code;
      return "message" in r.value ? r.value.message.seq : r.value.event?.seq;
    });
    expect(seqs).toEqual([2, 3, ErrorCode.REACTION_LIMIT, 4, 5]);
    const page = await messages.history(a, convId, { afterSeq: 0, beforeSeq: 0, limit: 10 });
    expect(page.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);
  });

  it("moves the actor's cursors over its own event as over its own message; the peer's stay", async () => {
    const [a, b] = [id(), id()];
    const convId = convIdForPair(a, b);
    await send(a, b, "hi");
    await send(b, a, "hello");
    // a has not acked b's message: its delivered cursor must not jump over it.
    const outcome = await messages.change(change(convId, a, 1, { kind: "edit", text: "hi!", atMs: 1 }));
    expect(outcome.event).toMatchObject({ seq: 3, sender: a, recipient: b, clientMsgId: `~${outcome.event?.msgId}` });
    const cursors = () =>
      sqlite.db
        .prepare("SELECT uid, delivered_seq, read_seq FROM conversation_members WHERE conv_id = ? ORDER BY uid")
        .all(convId);
    expect(cursors()).toEqual([
      { uid: a, delivered_seq: 1, read_seq: 3 },
      { uid: b, delivered_seq: 0, read_seq: 2 },
    ]);
    await messages.ack(a, [{ convId, seq: 3 }]);
    await messages.change(change(convId, a, 1, react("👍")));
    expect(cursors()).toEqual([
      { uid: a, delivered_seq: 4, read_seq: 4 },
      { uid: b, delivered_seq: 0, read_seq: 2 },
    ]);
  });

  it("takes ids in any decimal form: a change's actor, a mention's uids", async () => {
    const [a, b] = [id(), id()];
    const convId = convIdForPair(a, b);
    await send(a, b, "hi");
    const outcome = await messages.change(change(convId, `00${a}`, 1, react("👍")));
    expect(outcome.event).toMatchObject({ sender: a, recipient: b });
    expect(await messages.message(`0${b}` as Uid, convId, 1)).toMatchObject({ seq: 1 });

    const groups = new SqliteGroupStore(sqlite.db);
    const conversations = new SqliteConversationStore(sqlite.db);
    const groupId = id();
    await groups.create({ groupId, name: "g", owner: a, members: [b], maxMembers: 10 });
    const mention = (uids: string[]) =>
      groups.append({
        groupId,
        msgId: id(),
        sender: a,
        clientMsgId: `c-${id()}`,
        kind: MessageKind.TEXT,
        text: "@b",
        sentAtMs: 1,
        extras: { mentions: { uids: uids as Uid[], all: false } },
      });
    const { message } = await mention([`0${b}`, b]);
    expect(message.mentions).toEqual({ uids: [b], all: false });
    const listed = (await conversations.list(b, 10)).find((c) => c.convId === groupConvId(groupId));
    expect(listed?.mentioned).toBe(true);
    expect(await mention(["x"]).catch((e: AppError) => e.code)).toBe(ErrorCode.INVALID_ARGUMENT);
  });
});
