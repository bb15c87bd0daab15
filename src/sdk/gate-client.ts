import { request } from "undici";
import { AppError, ErrorCode } from "../errors.js";

export interface LoginAnswer {
  uid: string;
  token: string;
  expiresAtMs: number;
  nodeId: string;
  host: string;
  port: number;
  wsUrl: string;
}

/** gate's HTTP API, typed: every call answers its result or throws AppError with gate's code. */
export class GateClient {
  constructor(private readonly baseUrl: string) {}

  async requestVerifyCode(email: string): Promise<{ retryAfterSeconds?: number }> {
    return this.post("/v1/verify-code", { email });
  }

  async register(input: { user: string; email: string; password: string; code: string }): Promise<{ uid: string }> {
    return this.post("/v1/register", input);
  }

  async resetPassword(input: { email: string; password: string; code: string }): Promise<void> {
    await this.post("/v1/reset-password", input);
  }

  /** `login` is an email (contains "@") or a user name. */
  async login(login: string, password: string): Promise<LoginAnswer> {
    const body = login.includes("@") ? { email: login, password } : { user: login, password };
    return this.post("/v1/login", body);
  }

  /** Posts JSON and answers the reply; a non-zero `error` becomes AppError. */
  async post<T>(path: string, body: unknown): Promise<T> {
    let reply: { error?: number; message?: string } & Record<string, unknown>;
    try {
      const res = await request(new URL(path, this.baseUrl), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      reply = (await res.body.json()) as typeof reply;
    } catch (err) {
      throw new AppError(ErrorCode.UNAVAILABLE, `gate ${this.baseUrl}: ${(err as Error).message}`);
    }
    if (typeof reply.error !== "number") throw new AppError(ErrorCode.INTERNAL, `gate answered no error code`);
    if (reply.error !== ErrorCode.OK) throw new AppError(reply.error, reply.message);
    return reply as T;
  }
}
