import type { Config } from "../../src/config/settings.js";
import { configuredInstances, migrateShards, Shards } from "../../src/storage/sharded/shards.js";
import { testConfig } from "./env.js";

export interface TestShards {
  /** `base` with MYSQL_URL and MYSQL_SHARDS on the shards (1,024 slots). */
  config: Config;
  shards: Shards;
  /** Drops the test database on every instance of the map, then closes the pools. */
  close(): Promise<void>;
}

/** The test database on each of the stack's MariaDB shards, migrated, with the shard map open. */
export async function openTestShards(mysqlPorts: number[], base: Config = testConfig()): Promise<TestShards> {
  const db = new URL(base.MYSQL_URL).pathname.slice(1);
  const urls = mysqlPorts.map((port) => `mysql://root@127.0.0.1:${port}/${db}`);
  const config: Config = { ...base, MYSQL_URL: urls[0] as string, MYSQL_SHARDS: urls.join(","), SHARD_SLOTS: 1024 };
  await migrateShards(configuredInstances(config));
  const shards = await Shards.open(config);
  return {
    config,
    shards,
    async close() {
      for (const instance of shards.map.instances) {
        await shards
          .pool(instance.id)
          .query(`DROP DATABASE IF EXISTS \`${db}\``)
          .catch(() => undefined);
      }
      await shards.close();
    },
  };
}
