import { AppError, ErrorCode } from "../errors.js";
import { COLUMN_CHARS, directConvMembers } from "../ids/identifiers.js";
import type { RateLimiter } from "../routing/ports.js";
import type { MessageStore, Uid } from "../storage/ports.js";
import type { GateConfig } from "./deps.js";

/** The per-user upload budgets are counted per day (their settings say so). */
const DAY_SECONDS = 86_400;

/** "image/png" is allowed by "image/png" or "image/*". */
export function typeAllowed(allowList: string[], contentType: string): boolean {
  const type = baseType(contentType);
  if (!/^[a-z0-9.+-]+\/[a-z0-9.+-]+$/.test(type)) return false;
  const family = `${type.split("/")[0]}/*`;
  return allowList.includes(type) || allowList.includes(family);
}

/** "text/plain" of "Text/Plain; charset=utf-8". */
export function baseType(contentType: string): string {
  return contentType.split(";")[0]?.trim().toLowerCase() ?? "";
}

/** GATE_FILE_TYPES as a list. */
export function allowedTypes(config: Pick<GateConfig, "GATE_FILE_TYPES">): string[] {
  return config.GATE_FILE_TYPES.split(",")
    .map((t) => t.trim().toLowerCase())
    .filter(Boolean);
}

/** A file name without any path or control characters, as a download may offer it. */
export function cleanName(raw: string | undefined): string {
  const base = (raw ?? "").split(/[\\/]/).pop() ?? "";
  const printable = [...base]
    .filter((c) => c.charCodeAt(0) >= 0x20 && c !== "\u007f" && c !== '"')
    .join("")
    .trim();
  return [...(printable || "file")].slice(0, COLUMN_CHARS.fileName).join("");
}

/** Images open in the page (`<img src>`); anything else downloads. */
export function shownInline(contentType: string): boolean {
  return contentType.startsWith("image/");
}

/**
 * Whether uid takes part in convId: a 1:1 conversation's two users are in its id (it exists
 * before its first message), any other conversation's members are its member rows.
 */
export async function isParticipant(
  messages: Pick<MessageStore, "isMember">,
  convId: string,
  uid: Uid,
): Promise<boolean> {
  const direct = directConvMembers(convId);
  if (direct) return direct.some((member) => BigInt(member) === BigInt(uid));
  return messages.isMember(convId, uid);
}

/**
 * What one user may upload a day, through gate or straight to the store: a number of files
 * and a number of bytes. Both throw RATE_LIMITED past their budget.
 */
export class UploadQuota {
  constructor(
    private readonly limiter: RateLimiter,
    private readonly config: Pick<GateConfig, "GATE_UPLOADS_PER_USER_PER_DAY" | "GATE_UPLOAD_BYTES_PER_USER_PER_DAY">,
  ) {}

  /** One more upload of uid's today. */
  async countUpload(uid: Uid): Promise<void> {
    const limit = this.config.GATE_UPLOADS_PER_USER_PER_DAY;
    const quota = await this.limiter.hit(`uploads:${uid}`, limit, DAY_SECONDS);
    if (!quota.allowed) {
      throw new AppError(
        ErrorCode.RATE_LIMITED,
        `at most ${limit} uploads a day; retry in ${quota.retryAfterSeconds} s`,
      );
    }
  }

  /** size more bytes of uid's today; refused, it spends none of them. */
  async spendBytes(uid: Uid, size: number): Promise<void> {
    const limit = this.config.GATE_UPLOAD_BYTES_PER_USER_PER_DAY;
    const volume = await this.limiter.hit(`upload-bytes:${uid}`, limit, DAY_SECONDS, Math.max(1, size));
    if (!volume.allowed) {
      throw new AppError(
        ErrorCode.RATE_LIMITED,
        `at most ${limit} bytes uploaded a day; retry in ${volume.retryAfterSeconds} s`,
      );
    }
  }
}
