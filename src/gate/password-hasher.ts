import { AppError, ErrorCode } from "../errors.js";
import { hashPassword, verifyPassword } from "./password.js";

/**
 * scrypt behind a bounded queue: `inFlight` hashes run at once (each holds a libuv thread and
 * 32 MiB), up to `queueMax` wait, and any more are refused at once with UNAVAILABLE (503), so a
 * flood of logins costs queue slots, not memory or threads. Written here rather than taken from
 * a library: the one behaviour needed (refuse when full, never wait unbounded) is ten lines.
 */
export class PasswordHasher {
  #running = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(
    private readonly inFlight: number,
    private readonly queueMax: number,
  ) {}

  hash(password: string): Promise<string> {
    return this.#run(() => hashPassword(password));
  }

  verify(password: string, stored: string): Promise<boolean> {
    return this.#run(() => verifyPassword(password, stored));
  }

  async #run<T>(work: () => Promise<T>): Promise<T> {
    if (this.#running >= this.inFlight) {
      if (this.#waiting.length >= this.queueMax) {
        throw new AppError(ErrorCode.UNAVAILABLE, "too many password checks at once; retry shortly");
      }
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    } else this.#running += 1;
    try {
      return await work();
    } finally {
      // The slot passes straight to the next waiter, or is given back.
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running -= 1;
    }
  }
}
