import { createHash } from "node:crypto";

/** `size` bytes in a pattern of `seed`: files whose every byte is known, told apart by seed. */
export function filler(size: number, seed: number): Buffer<ArrayBuffer> {
  const bytes = Buffer.alloc(size) as Buffer<ArrayBuffer>;
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + seed) % 251;
  return bytes;
}

/** Hex SHA-256: what a download is compared by. */
export const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");
