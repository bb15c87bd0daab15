/** The part of http_ece (no types of its own) the local Web Push service uses: decrypting a push. */
declare module "http_ece" {
  import type { ECDH } from "node:crypto";

  export interface DecryptParams {
    version: "aes128gcm" | "aesgcm";
    /** The receiver's (the subscription's) ECDH key pair. */
    privateKey?: ECDH;
    /** Base64url text or bytes. */
    authSecret?: string | Buffer;
    dh?: string | Buffer;
    key?: string | Buffer;
  }

  export function decrypt(buffer: Buffer, params: DecryptParams): Buffer;
  export function encrypt(buffer: Buffer, params: Record<string, unknown>): Buffer;

  const ece: { decrypt: typeof decrypt; encrypt: typeof encrypt };
  export default ece;
}
