import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { Config } from "../config/settings.js";
import type { Logger } from "../log/logger.js";
import type { IdGenerator } from "./ports.js";
import { Snowflake } from "./snowflake.js";
import type { WorkerIdLeases } from "./worker-leases.js";

export interface LeasedSnowflake {
  ids: IdGenerator;
  /** The worker id leased now (it changes when a lost lease is replaced). */
  readonly workerId: number;
  /** Stops renewing, stops issuing ids and gives the worker id back. */
  release(): Promise<void>;
}

/** How soon a process without a lease tries again for one (renewals keep their own pace). */
const LEASE_RETRY_MS = 1000;

/**
 * A snowflake generator on a worker id leased from `leases` (Redis, or memory when everything
 * runs in one process). The lease is renewed every third of its TTL. Once it is lost, or cannot
 * be renewed before it runs out, ids stop (UNAVAILABLE), because another process may then hold
 * the id; the process then leases a worker id again (whichever is free) and goes on. A Redis
 * failover that drops the last writes, or a long partition, thus costs a pause, not the node.
 */
export async function leaseSnowflake(deps: {
  leases: WorkerIdLeases;
  config: Pick<Config, "CLOCK_BACKWARDS_TOLERANCE_MS">;
  log: Logger;
  owner?: string;
}): Promise<LeasedSnowflake> {
  const { leases, config, log } = deps;
  const ttlMs = leases.ttlMs;
  const intervalMs = Math.max(1, Math.floor(ttlMs / 3));
  const owner = deps.owner ?? `${hostname()}:${process.pid}:${randomBytes(4).toString("hex")}`;

  // The lease store starts the TTL when it runs the command, never before we send it: measuring
  // from the send keeps our idea of the deadline on the safe side.
  let sentAt = Date.now();
  let workerId = await leases.acquire(owner);
  let leaseUntil = sentAt + ttlMs;

  const snowflake = new Snowflake({ workerId, clockBackwardsToleranceMs: config.CLOCK_BACKWARDS_TOLERANCE_MS });
  let timer: NodeJS.Timeout | undefined;
  let released = false;

  const lose = (reason: string, err?: unknown) => {
    if (released) return;
    snowflake.disable(reason);
    log.error({ err, workerId, owner }, `snowflake worker id lease: ${reason}; ids stop until a new lease`);
  };

  const tick = async () => {
    sentAt = Date.now();
    try {
      if (snowflake.disabled) {
        // Any free id will do, the old one included: nobody holds it if we can take it.
        workerId = await leases.acquire(owner);
        leaseUntil = sentAt + ttlMs;
        if (released) {
          await leases.release(workerId, owner);
          return;
        }
        snowflake.enable(workerId);
        log.warn({ workerId, owner }, "snowflake worker id leased again; issuing ids");
      } else if (await leases.renew(workerId, owner)) {
        leaseUntil = sentAt + ttlMs;
      } else {
        lose("lost (expired or taken)");
      }
    } catch (err) {
      if (snowflake.disabled) {
        log.warn({ err }, "snowflake worker id lease could not be acquired; retrying");
      } else if (Date.now() + intervalMs >= leaseUntil) {
        // Give up while the lease is still ours if the next attempt would come too late.
        lose("could not be renewed in time", err);
      } else {
        log.warn({ err, workerId }, "snowflake worker lease renewal failed; retrying");
      }
    }
    schedule();
  };

  const schedule = () => {
    if (released) return;
    timer = setTimeout(() => void tick(), snowflake.disabled ? Math.min(intervalMs, LEASE_RETRY_MS) : intervalMs);
    timer.unref();
  };
  schedule();

  const ids: IdGenerator = {
    next() {
      // Guards against a renewal timer that ran late (a blocked event loop) while the lease ran out.
      if (!snowflake.disabled && Date.now() >= leaseUntil) lose("ran out before renewal");
      return snowflake.next();
    },
  };

  log.info({ workerId, owner, ttlMs }, "snowflake worker id leased");
  return {
    ids,
    get workerId() {
      return workerId;
    },
    async release() {
      released = true;
      if (timer) clearTimeout(timer);
      const held = !snowflake.disabled;
      snowflake.disable("released");
      if (!held) return;
      await leases.release(workerId, owner).catch((err: unknown) => {
        log.warn({ err, workerId }, "snowflake worker lease release failed; it expires by itself");
      });
    },
  };
}
