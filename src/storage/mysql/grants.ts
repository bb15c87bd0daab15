import mysql from "mysql2/promise";
import type { Logger } from "../../log/logger.js";

/** The services that reach MySQL with a user of their own (compose's per-service users). */
export type DatabaseService = "gate" | "chat";

/**
 * What each service's user may touch, table by table: rows to read and write, rows only to
 * read. Gate registers users and keeps file metadata, and reads membership to hand out files;
 * chat nodes keep conversations, messages, friends and groups, mark files sent, and read users
 * (names, search). An account deletion crosses the line as a row, not as a grant: gate records
 * it in account_deletions and deletes the profile, the chat nodes carry out the rest and delete
 * the row (src/account/). Both read the shard map and take the rebalancer's slot fence (a locking
 * read). Neither may change the schema, nor read the other's tables: gate reads no message
 * (the Server API reads history, and counts messages, through the chat nodes).
 */
export const SERVICE_TABLES: Record<DatabaseService, { write: readonly string[]; read: readonly string[] }> = {
  gate: {
    // api_keys, user_bans: the Server API under /admin (issue 18).
    // push_devices: a user registers and removes its push devices (issue 18).
    write: [
      "users",
      "user_names",
      "user_emails",
      "files",
      // Direct uploads started and not completed (issue 19): recorded, completed and swept by gate.
      "pending_uploads",
      "account_deletions",
      "api_keys",
      "user_bans",
      "push_devices",
      // bots: the Server API makes, changes and removes bots (issue 18).
      "bots",
    ],
    // file_shares: a forwarded file is downloaded by the participants of the conversations it was forwarded into.
    // The Server API reads a group's owner and the reports users filed (issue 18).
    read: ["conversation_members", "file_shares", "shard_map", "slot_fence", "chat_groups", "reports"],
  },
  chat: {
    write: [
      "conversations",
      "conversation_members",
      "messages",
      "user_conversations",
      "chat_groups",
      "group_members",
      "group_invitations",
      "friendships",
      "friend_applications",
      "files",
      // The message model and safety (issues 16, 17).
      "message_reactions",
      "message_hidden",
      "file_shares",
      "user_blocks",
      "reports",
      "group_join_requests",
      // Account deletions gate recorded: read, carried out, then deleted (issue 17).
      "account_deletions",
      // Push devices: read for offline recipients, dropped when their push service says gone (issue 18).
      "push_devices",
      // Webhook events: written with messages and by the chat nodes, sent and deleted by their dispatcher (issue 18).
      "webhook_outbox",
    ],
    // bots: the webhook dispatcher reads them (and caches them) to deliver bot.message events (issue 18).
    read: ["users", "user_names", "user_emails", "shard_map", "slot_fence", "bots"],
  },
};

/** MYSQL_SERVICE_USERS ("gate=shardchat_gate,chat=shardchat_chat") as service → user. */
export function parseServiceUsers(value: string): Map<DatabaseService, string> {
  const users = new Map<DatabaseService, string>();
  for (const entry of value
    .split(",")
    .map((e) => e.trim())
    .filter(Boolean)) {
    const [service, user] = entry.split("=").map((p) => p.trim());
    if ((service !== "gate" && service !== "chat") || !user || !/^[A-Za-z0-9_]{1,80}$/.test(user)) {
      throw new Error(`MYSQL_SERVICE_USERS: "${entry}" is not gate=<user> or chat=<user>`);
    }
    users.set(service, user);
  }
  return users;
}

/**
 * Gives each service's user (made beforehand, at any host) exactly its tables of the database
 * in `url` (an admin's URL; run after the migrations, since a grant names existing tables),
 * and takes back a grant on the whole database that an older setup gave.
 */
export async function grantServiceUsers(url: string, users: Map<DatabaseService, string>, log?: Logger): Promise<void> {
  if (users.size === 0) return;
  const database = decodeURIComponent(new URL(url).pathname.replace(/^\//, ""));
  const conn = await mysql.createConnection({ uri: url });
  try {
    for (const [service, user] of users) {
      const [hosts] = await conn.query<mysql.RowDataPacket[]>("SELECT Host AS host FROM mysql.user WHERE User = ?", [
        user,
      ]);
      if (hosts.length === 0) throw new Error(`MYSQL_SERVICE_USERS: no MySQL user ${user} (for ${service})`);
      for (const { host } of hosts) {
        await conn
          .query(`REVOKE ALL PRIVILEGES ON \`${database}\`.* FROM ?@?`, [user, host])
          .catch((err: { errno?: number }) => {
            // 1141: there was no such grant.
            if (err.errno !== 1141) throw err;
          });
        const { write, read } = SERVICE_TABLES[service];
        for (const table of write) {
          await conn.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON \`${database}\`.\`${table}\` TO ?@?`, [user, host]);
        }
        for (const table of read) await conn.query(`GRANT SELECT ON \`${database}\`.\`${table}\` TO ?@?`, [user, host]);
      }
      log?.info({ service, user, database }, "granted the service's tables");
    }
  } finally {
    await conn.end();
  }
}
