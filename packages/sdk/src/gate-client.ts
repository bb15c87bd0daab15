import type { Readable } from "node:stream";
import { AppError, type DeviceName, ErrorCode, type Uid } from "@shardchat/protocol";
import type { DetailedError } from "tus-js-client";

export interface LoginAnswer {
  /** Gate issued it: a canonical decimal id. */
  uid: Uid;
  token: string;
  expiresAtMs: number;
  nodeId: string;
  host: string;
  port: number;
  wsUrl: string;
  /** The device kind the token is bound to, when the login named one. */
  device?: DeviceName;
}

/** Who calls: a login's uid and token (gate checks the token with status). */
export interface Auth {
  uid: string;
  token: string;
}

/** What gate answers for an upload. `url` is relative to gate (GET it with the token). */
export interface UploadedFile {
  id: string;
  url: string;
  name: string;
  size: number;
  contentType: string;
  /** An image's dimensions and thumbnail, a recording's length, as gate recorded them (issue 19). */
  media?: UploadedMedia;
}

/** What gate learned of an upload's content: messages naming the file carry the same. */
export interface UploadedMedia {
  width: number;
  height: number;
  durationMs: number;
  thumbnail?: { width: number; height: number; size: string; contentType: string };
}

export interface UploadOptions {
  /** Called with bytes sent so far and the total (in a browser, where XMLHttpRequest reports them). */
  onProgress?: (sent: number, total: number) => void;
  /** A recording's length (a voice message's), for audio and video files; at most MEDIA_MAX_DURATION_MS. */
  durationMs?: number;
}

/**
 * What a resumable upload sends: a Blob (a browser's File), a Buffer, or a Node stream with its
 * size (a file's `fs.createReadStream(path)` can be resumed from any offset; another stream
 * only from where it is).
 */
export type ResumableSource = Blob | Buffer | { stream: Readable; size: number };

export interface ResumableUploadOptions {
  contentType: string;
  /** A recording's length (a voice message's), for audio and video files; at most MEDIA_MAX_DURATION_MS. */
  durationMs?: number;
  /** Called with bytes the server has or is being sent (counted from the file's start) and the total. */
  onProgress?: (sent: number, total: number) => void;
  /** Bytes per PATCH request (default: the whole rest in one, but 8 MiB for a stream). */
  chunkSize?: number;
  /** Stops the upload (the promise rejects with the signal's reason); it can be resumed later. */
  signal?: AbortSignal;
  /** An upload URL an earlier call announced: the upload goes on from where gate has it. */
  resumeFrom?: string;
  /** Called with the upload's URL once gate created it: keep it to resume after an interruption. */
  onUploadUrl?: (url: string) => void;
}

/** gate's HTTP API, typed: every call answers its result or throws AppError with gate's code. */
export class GateClient {
  constructor(private readonly baseUrl: string) {}

  async requestVerifyCode(email: string): Promise<{ retryAfterSeconds?: number }> {
    return this.post("/v1/verify-code", { email });
  }

  async register(input: { user: string; email: string; password: string; code: string }): Promise<{ uid: Uid }> {
    return this.post("/v1/register", input);
  }

  async resetPassword(input: { email: string; password: string; code: string }): Promise<void> {
    await this.post("/v1/reset-password", input);
  }

  /**
   * `login` is an email (contains "@") or a user name. `device` binds the token to that device
   * kind: a chat login from another kind is refused.
   */
  async login(login: string, password: string, device?: DeviceName): Promise<LoginAnswer> {
    const who = login.includes("@") ? { email: login } : { user: login };
    const body = { ...who, password, ...(device ? { device } : {}) };
    return this.post("/v1/login", body);
  }

  /**
   * Revokes this login's token (or, with all, every token of the user) and ends the sessions
   * they opened; answers how many tokens were revoked.
   */
  async logout(auth: Auth, options: { all?: boolean } = {}): Promise<number> {
    const res = await this.send(new URL("/v1/logout", this.baseUrl), {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${auth.token}`, "x-uid": auth.uid },
      body: JSON.stringify({ all: options.all === true }),
    });
    return this.check<{ revoked: number }>(await res.json().catch(() => ({}))).revoked;
  }

  /**
   * Deletes the caller's account (DELETE /v1/account; the password again): its sessions end
   * and its profile goes at once (the name and email may register again); its friendships,
   * groups, blocks (and with erase its messages) go within ACCOUNT_DELETION_POLL_MS, done by the
   * chat nodes. BAD_CREDENTIALS for a wrong password (counted in the login lockout), TOKEN_INVALID.
   */
  async deleteAccount(auth: Auth, password: string): Promise<void> {
    const res = await this.send(new URL("/v1/account", this.baseUrl), {
      method: "DELETE",
      headers: { "content-type": "application/json", authorization: `Bearer ${auth.token}`, "x-uid": auth.uid },
      body: JSON.stringify({ password }),
    });
    this.check(await res.json().catch(() => ({})));
  }

  /** The chat node that owns this user now (after its node went away), without logging in again. */
  async node(auth: Auth): Promise<Pick<LoginAnswer, "nodeId" | "host" | "port" | "wsUrl">> {
    const res = await this.send(new URL("/v1/node", this.baseUrl), {
      headers: { authorization: `Bearer ${auth.token}`, "x-uid": auth.uid },
    });
    return this.check(await res.json().catch(() => ({})));
  }

  /**
   * Uploads a file for a conversation the caller is in (multipart to POST /v1/files). Refusals:
   * FILE_TOO_LARGE, FILE_TYPE_NOT_ALLOWED, NOT_PARTICIPANT, TOKEN_INVALID.
   */
  async upload(
    auth: Auth,
    convId: string,
    file: Blob,
    name: string,
    options: UploadOptions = {},
  ): Promise<UploadedFile> {
    const url = new URL(`/v1/files?convId=${encodeURIComponent(convId)}`, this.baseUrl);
    if (options.durationMs !== undefined) url.searchParams.set("durationMs", String(Math.round(options.durationMs)));
    const form = new FormData();
    form.append("file", file, name);
    const headers = { authorization: `Bearer ${auth.token}`, "x-uid": auth.uid };
    if (options.onProgress && typeof XMLHttpRequest === "function") {
      return this.check(await xhrUpload(url, form, headers, options.onProgress));
    }
    return this.check(await this.send(url, { method: "POST", headers, body: form }).then((res) => res.json()));
  }

  /**
   * Uploads a file with the tus protocol (POST /v1/files/tus, then PATCHes; `tus-js-client`, in
   * Node and browsers), up to GATE_RESUMABLE_MAX_BYTES, and answers what upload() answers. A
   * failed request is retried; an upload that stopped (signal, a lost connection, a closed tab)
   * goes on where gate has it when called again with `resumeFrom`, the URL `onUploadUrl` gave
   * (an unfinished upload expires after GATE_RESUMABLE_EXPIRY_MS). Refusals as upload()'s, and
   * RATE_LIMITED for the daily budgets.
   */
  async uploadResumable(
    auth: Auth,
    convId: string,
    file: ResumableSource,
    name: string,
    options: ResumableUploadOptions,
  ): Promise<UploadedFile> {
    const { signal } = options;
    signal?.throwIfAborted();
    // Node's tus reader takes Buffers and streams; a browser's takes the Blob itself.
    const isNode = typeof process !== "undefined" && process.versions?.node !== undefined;
    const source = file instanceof Blob && isNode ? Buffer.from(await file.arrayBuffer()) : file;
    // No Buffer in a browser: told apart by shape.
    const isStream = !(source instanceof Blob) && "stream" in source;
    const metadata: Record<string, string> = { convId, filename: name, filetype: options.contentType };
    if (options.durationMs !== undefined) metadata.durationMs = String(Math.round(options.durationMs));
    // Loaded on the first resumable upload: an app (or the load tool) that never makes one does not
    // load the tus client, whose Node build brings file locking and signal handlers along.
    const { Upload: TusUpload } = await import("tus-js-client");
    return new Promise<UploadedFile>((resolve, reject) => {
      const upload = new TusUpload(isStream ? source.stream : source, {
        endpoint: new URL("/v1/files/tus", this.baseUrl).toString(),
        uploadUrl: options.resumeFrom ?? null,
        metadata,
        headers: { authorization: `Bearer ${auth.token}`, "x-uid": auth.uid },
        ...(isStream ? { uploadSize: source.size } : {}),
        chunkSize: options.chunkSize ?? (isStream ? 8 * 1024 * 1024 : Number.POSITIVE_INFINITY),
        // Where to resume is the caller's to keep (resumeFrom), not a store of the library's.
        storeFingerprintForResuming: false,
        onProgress: options.onProgress ?? null,
        onUploadUrlAvailable: () => {
          if (upload.url) options.onUploadUrl?.(upload.url);
        },
        onSuccess: ({ lastResponse }) => {
          signal?.removeEventListener("abort", onAbort);
          try {
            resolve(this.check<UploadedFile>(JSON.parse(lastResponse.getBody() || "{}")));
          } catch (err) {
            reject(err instanceof AppError ? err : new AppError(ErrorCode.INTERNAL, "gate answered no stored file"));
          }
        },
        onError: (err) => {
          signal?.removeEventListener("abort", onAbort);
          reject(refusalOf(err));
        },
      });
      const onAbort = () => {
        void upload.abort(false);
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      upload.start();
    });
  }

  /** A file's bytes and type, if the caller is a participant of its conversation (else NOT_PARTICIPANT). */
  async download(auth: Auth, id: string): Promise<{ bytes: Uint8Array; contentType: string; name: string }> {
    const res = await this.send(new URL(`/v1/files/${encodeURIComponent(id)}`, this.baseUrl), {
      headers: { authorization: `Bearer ${auth.token}`, "x-uid": auth.uid },
    });
    if (!res.ok) {
      this.check(await res.json().catch(() => ({})));
      throw new AppError(ErrorCode.INTERNAL, `gate answered HTTP ${res.status}`);
    }
    const disposition = res.headers.get("content-disposition") ?? "";
    const encoded = /filename\*=UTF-8''([^;]+)/.exec(disposition)?.[1];
    return {
      bytes: new Uint8Array(await res.arrayBuffer()),
      contentType: res.headers.get("content-type") ?? "application/octet-stream",
      name: encoded ? decodeURIComponent(encoded) : id,
    };
  }

  /**
   * A link to one file (or, `thumbnail`, to the preview gate made of an image) for a browser to
   * open or show itself (`<img src>`, a download), signed by gate and valid until expiresAtMs
   * (GATE_FILE_LINK_TTL_MS), or the object store's presigned URL (FILE_URL_TTL_SECONDS); it
   * carries no token. Refusals as download's, and NOT_FOUND for an image without a thumbnail.
   */
  async fileLink(
    auth: Auth,
    id: string,
    variant: "original" | "thumbnail" = "original",
  ): Promise<{ url: string; expiresAtMs: number }> {
    const url = new URL(`/v1/files/${encodeURIComponent(id)}/link`, this.baseUrl);
    if (variant === "thumbnail") url.searchParams.set("variant", "thumbnail");
    const res = await this.send(url, {
      method: "POST",
      headers: { authorization: `Bearer ${auth.token}`, "x-uid": auth.uid },
    });
    const answer = this.check(await res.json().catch(() => ({}))) as { url: string; expiresAtMs: number };
    return { url: new URL(answer.url, this.baseUrl).toString(), expiresAtMs: answer.expiresAtMs };
  }

  /** The VAPID key browsers subscribe to Web Push with ("" when this deployment has no Web Push). */
  async pushConfig(): Promise<{ webPushPublicKey: string }> {
    const res = await this.send(new URL("/v1/push/config", this.baseUrl), {});
    return this.check(await res.json().catch(() => ({})));
  }

  /**
   * Registers this device for push notifications (or replaces its token): a webpush token is the
   * browser's PushSubscription as JSON. INVALID_ARGUMENT, PAYLOAD_TOO_LARGE, TOKEN_INVALID.
   */
  async registerPushDevice(
    auth: Auth,
    device: { deviceId: string; provider: "webpush" | "fcm" | "apns"; token: string },
  ): Promise<void> {
    const res = await this.send(new URL("/v1/push/devices", this.baseUrl), {
      method: "PUT",
      headers: { "content-type": "application/json", authorization: `Bearer ${auth.token}`, "x-uid": auth.uid },
      body: JSON.stringify(device),
    });
    this.check(await res.json().catch(() => ({})));
  }

  /** Removes this device's push registration (a logout, notifications turned off); whether there was one. */
  async unregisterPushDevice(auth: Auth, deviceId: string): Promise<boolean> {
    const res = await this.send(new URL(`/v1/push/devices/${encodeURIComponent(deviceId)}`, this.baseUrl), {
      method: "DELETE",
      headers: { authorization: `Bearer ${auth.token}`, "x-uid": auth.uid },
    });
    return this.check<{ removed: boolean }>(await res.json().catch(() => ({}))).removed;
  }

  /** Posts JSON and answers the reply; a non-zero `error` becomes AppError. */
  async post<T>(path: string, body: unknown): Promise<T> {
    const res = await this.send(new URL(path, this.baseUrl), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return this.check(await res.json().catch(() => ({})));
  }

  private async send(url: URL, init: RequestInit): Promise<Response> {
    try {
      return await fetch(url, init);
    } catch (err) {
      throw new AppError(ErrorCode.UNAVAILABLE, `gate ${this.baseUrl}: ${(err as Error).message}`);
    }
  }

  private check<T>(reply: unknown): T {
    const r = reply as { error?: unknown; message?: string; retryAfterSeconds?: unknown; details?: unknown };
    if (typeof r?.error !== "number") throw new AppError(ErrorCode.INTERNAL, "gate answered no error code");
    if (r.error !== ErrorCode.OK) {
      // A cool-down or rate limit says when to ask again (VERIFY_CODE_COOLDOWN, RATE_LIMITED).
      const err = new AppError(r.error, r.message) as AppError & { retryAfterSeconds?: number; details?: unknown };
      if (typeof r.retryAfterSeconds === "number") err.retryAfterSeconds = r.retryAfterSeconds;
      // ACCOUNT_BANNED: the ban's reason and end (untilMs, 0: until unbanned).
      if (r.details !== undefined) err.details = r.details;
      throw err;
    }
    return reply as T;
  }
}

/** gate's `{error, message}` of a failed tus request as AppError; UNAVAILABLE when gate said none. */
function refusalOf(err: Error | DetailedError): AppError {
  const body = "originalResponse" in err ? err.originalResponse?.getBody() : undefined;
  try {
    const reply = JSON.parse(body ?? "") as { error?: unknown; message?: unknown };
    if (typeof reply.error === "number" && reply.error !== ErrorCode.OK) {
      return new AppError(reply.error, typeof reply.message === "string" ? reply.message : undefined);
    }
  } catch {
    // Not gate's JSON: a network failure, or a proxy's page.
  }
  return new AppError(ErrorCode.UNAVAILABLE, `resumable upload: ${err.message}`);
}

/** fetch cannot report upload progress; XMLHttpRequest can. */
function xhrUpload(
  url: URL,
  form: FormData,
  headers: Record<string, string>,
  onProgress: (sent: number, total: number) => void,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url.toString());
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
    xhr.responseType = "json";
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.total);
    xhr.onload = () => resolve(xhr.response ?? {});
    xhr.onerror = () => reject(new AppError(ErrorCode.UNAVAILABLE, "upload failed"));
    xhr.send(form);
  });
}
