import mysql, { type RowDataPacket } from "mysql2/promise";

/**
 * How often each of these message ids is stored, over every instance: the exactly-once check of
 * the stack suite and the scale benchmark (1 each, else a message was lost or copied twice).
 */
export async function storedMessageCounts(instanceUrls: string[], msgIds: string[]): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const url of instanceUrls) {
    const conn = await mysql.createConnection({ uri: url, supportBigNumbers: true, bigNumberStrings: true });
    try {
      for (let i = 0; i < msgIds.length; i += 1000) {
        const [rows] = await conn.query<RowDataPacket[]>("SELECT msg_id FROM messages WHERE msg_id IN (?)", [
          msgIds.slice(i, i + 1000),
        ]);
        for (const r of rows) counts.set(String(r.msg_id), (counts.get(String(r.msg_id)) ?? 0) + 1);
      }
    } finally {
      await conn.end();
    }
  }
  return counts;
}
