import { createHash } from "node:crypto";
import type { Cluster, Redis } from "ioredis";

/** A Lua script bound to a client: called with its keys then its arguments. */
export type RedisScript = (...keysThenArgs: (string | number)[]) => Promise<unknown>;

/**
 * Registers `lua` as a command of the client (ioredis defineCommand): the script text crosses
 * the wire once per connection, every later call is an EVALSHA (and ioredis loads it again
 * after a NOSCRIPT, as when a failover brings up a replica that never saw it).
 */
export function redisScript(redis: Redis | Cluster, lua: string, numberOfKeys: number): RedisScript {
  const name = `shardchat_${createHash("sha1").update(lua).digest("hex").slice(0, 16)}`;
  const commands = redis as unknown as Record<string, RedisScript | undefined>;
  if (!commands[name]) redis.defineCommand(name, { lua, numberOfKeys });
  return (...keysThenArgs) => (commands[name] as RedisScript).call(redis, ...keysThenArgs);
}
