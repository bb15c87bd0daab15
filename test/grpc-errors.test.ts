import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AppError, ErrorCode } from "../src/errors.js";
import { VerifyServiceService } from "../src/gen/shardchat/v1/verify.js";
import { addApi, grpcClient, startGrpcServer } from "../src/grpc/api.js";
import { freePort } from "./helpers/ports.js";

/** A service's failure reaches its caller over gRPC with the code the service raised. */
describe("error codes over internal gRPC", () => {
  let server: Awaited<ReturnType<typeof startGrpcServer>>;
  let client: ReturnType<typeof grpcClient<typeof VerifyServiceService>>;

  beforeAll(async () => {
    server = await startGrpcServer("127.0.0.1:0", (s) =>
      addApi(s, VerifyServiceService, {
        async getVerifyCode({ email }) {
          if (email === "limited@example.com")
            throw new AppError(ErrorCode.RATE_LIMITED, "too many codes for this email");
          if (email === "bug@example.com") throw new TypeError("cannot read properties of undefined");
          return { error: ErrorCode.OK, retryAfterSeconds: 0 };
        },
        async consumeVerifyCode() {
          throw new AppError(ErrorCode.STORAGE_UNAVAILABLE, "codes cannot be read");
        },
      }),
    );
    client = grpcClient(VerifyServiceService, `127.0.0.1:${server.port}`, { deadlineMs: 2000 });
  });

  afterAll(async () => {
    client?.close();
    await server?.close();
  });

  it("keeps the service's code and message", async () => {
    await expect(client.api.getVerifyCode({ email: "limited@example.com", clientAddr: "" })).rejects.toMatchObject({
      code: ErrorCode.RATE_LIMITED,
      message: "too many codes for this email",
    });
    await expect(
      client.api.consumeVerifyCode({ email: "a@example.com", code: "1", checkOnly: false }),
    ).rejects.toMatchObject({
      code: ErrorCode.STORAGE_UNAVAILABLE,
    });
    expect(await client.api.getVerifyCode({ email: "fine@example.com", clientAddr: "" })).toMatchObject({
      error: ErrorCode.OK,
    });
  });

  it("answers INTERNAL for a failure that is not in the error table", async () => {
    const err = await client.api.getVerifyCode({ email: "bug@example.com", clientAddr: "" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe(ErrorCode.INTERNAL);
  });

  it("answers UNAVAILABLE when the service cannot be reached", async () => {
    const nobody = grpcClient(VerifyServiceService, `127.0.0.1:${await freePort()}`, { deadlineMs: 500 });
    try {
      await expect(nobody.api.getVerifyCode({ email: "a@example.com", clientAddr: "" })).rejects.toMatchObject({
        code: ErrorCode.UNAVAILABLE,
      });
    } finally {
      nobody.close();
    }
  });
});
