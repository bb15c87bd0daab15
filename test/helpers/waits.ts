import { AppError, type ErrorCode } from "../../src/errors.js";

/** Long enough for a push across processes on a busy 2-core machine. */
const WAIT_MS = 15_000;

/** Resolves once `cond` holds; fails after WAIT_MS naming `what` (and `detail()`, say the output so far). */
export async function until(
  what: string,
  cond: () => boolean | Promise<boolean>,
  detail: () => string = () => "",
): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${detail() ? `\n${detail()}` : ""}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The code a call is refused with, "resolved" when it is not, or what else it threw (for the failure's message). */
export async function codeOf(promise: Promise<unknown>): Promise<ErrorCode | string> {
  try {
    await promise;
    return "resolved";
  } catch (err) {
    return err instanceof AppError ? err.code : `not an AppError: ${String(err)}`;
  }
}
