import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { Config } from "../config/settings.js";
import type { Logger } from "../log/logger.js";
import type { IdGenerator } from "./ports.js";
import { Snowflake } from "./snowflake.js";
import type { WorkerIdLeases } from "./worker-leases.js";

export interface LeasedSnowflake {
  ids: IdGenerator;
  workerId: number;
  /** Stops renewing, stops issuing ids and gives the worker id back. */
  release(): Promise<void>;
}

/**
 * A snowflake generator on a worker id leased from `leases` (Redis, or memory when everything
 * runs in one process). The lease is renewed every third of its TTL; once it is lost, or cannot
 * be renewed before it runs out, the generator stops for good (ids fail with UNAVAILABLE),
 * because another process may then hold the id.
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
  const workerId = await leases.acquire(owner);
  let leaseUntil = sentAt + ttlMs;

  const snowflake = new Snowflake({ workerId, clockBackwardsToleranceMs: config.CLOCK_BACKWARDS_TOLERANCE_MS });
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  const stop = (reason: string) => {
    stopped = true;
    if (timer) clearTimeout(timer);
    snowflake.disable(reason);
  };

  const renew = async () => {
    sentAt = Date.now();
    try {
      if (await leases.renew(workerId, owner)) {
        leaseUntil = sentAt + ttlMs;
      } else {
        log.error({ workerId, owner }, "snowflake worker lease lost; this process stops issuing ids");
        stop("worker id lease lost");
        return;
      }
    } catch (err) {
      // Give up while the lease is still ours if the next attempt would come too late.
      if (Date.now() + intervalMs >= leaseUntil) {
        log.error(
          { err, workerId, owner },
          "snowflake worker lease could not be renewed; this process stops issuing ids",
        );
        stop("worker id lease could not be renewed");
        return;
      }
      log.warn({ err, workerId }, "snowflake worker lease renewal failed; retrying");
    }
    schedule();
  };

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => void renew(), intervalMs);
    timer.unref();
  };
  schedule();

  const ids: IdGenerator = {
    next() {
      // Guards against a renewal timer that ran late (a blocked event loop) while the lease ran out.
      if (!snowflake.disabled && Date.now() >= leaseUntil) {
        log.error({ workerId, owner }, "snowflake worker lease ran out before renewal; this process stops issuing ids");
        stop("worker id lease ran out");
      }
      return snowflake.next();
    },
  };

  log.info({ workerId, owner, ttlMs }, "snowflake worker id leased");
  return {
    ids,
    workerId,
    async release() {
      stop("released");
      await leases.release(workerId, owner).catch((err: unknown) => {
        log.warn({ err, workerId }, "snowflake worker lease release failed; it expires by itself");
      });
    },
  };
}
