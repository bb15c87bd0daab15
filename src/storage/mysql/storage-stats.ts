import type { RowDataPacket } from "mysql2/promise";
import { ErrorCode } from "../../errors.js";
import type { ShardSize, StorageStats } from "../ports.js";
import type { KeyPlacement } from "./block-store.js";
import { mysqlCall } from "./errors.js";

/**
 * Rows of users and messages per instance, counted (exact, for an operator's occasional look:
 * InnoDB's table_rows estimate can be off by half).
 */
export class MysqlStorageStats implements StorageStats {
  constructor(private readonly placement: Pick<KeyPlacement, "instances" | "pool">) {}

  sizes(): Promise<ShardSize[]> {
    return mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, "shard sizes", () =>
      Promise.all(
        this.placement.instances().map(async (instance) => {
          const [rows] = await this.placement
            .pool(instance)
            .query<RowDataPacket[]>(
              "SELECT (SELECT COUNT(*) FROM users) AS users, (SELECT COUNT(*) FROM messages) AS messages",
            );
          return { instance, users: Number(rows[0]?.users ?? 0), messages: Number(rows[0]?.messages ?? 0) };
        }),
      ),
    );
  }
}
