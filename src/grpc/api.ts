import { createHash, timingSafeEqual } from "node:crypto";
import {
  Client,
  type ClientDuplexStream,
  type ClientOptions,
  credentials,
  status as grpcStatus,
  type handleUnaryCall,
  Metadata,
  Server,
  ServerCredentials,
  ServerInterceptingCall,
  type ServerInterceptor,
  type ServiceDefinition,
  type ServiceError,
  type StatusObject,
  type UntypedHandleCall,
} from "@grpc/grpc-js";
import { ErrorDetail } from "../../packages/protocol/src/wire.js";
import { AppError, codeOf, ErrorCode, errorName, httpStatusOf } from "../errors.js";
import { type TraceHeaders, type TraceSpan, type Tracing, traceHeadersOf } from "../tracing/ports.js";
import type { InternalTls } from "./tls.js";

/**
 * The promise API of a generated grpc-js service definition: one async method per rpc.
 * Services implement it; callers depend on it, whether it is served in-process or over gRPC.
 */
export type Api<D> = {
  [K in keyof D as D[K] extends StreamingMethod ? never : K]: D[K] extends {
    requestDeserialize: (b: Buffer) => infer Req;
    responseDeserialize: (b: Buffer) => infer Res;
  }
    ? (request: Req, meta?: CallMeta) => Promise<Res>
    : never;
};

/** An rpc with a stream on either side: served and called by hand (see openBidiStream), not through Api. */
type StreamingMethod = { requestStream: true } | { responseStream: true };

function isStreaming(method: { requestStream?: boolean; responseStream?: boolean }): boolean {
  return method.requestStream === true || method.responseStream === true;
}

/**
 * What travels beside a request in gRPC metadata: the id of the client request or message it
 * serves, so the log lines of every service it crosses can be joined. (A trace's context travels
 * there too, as traceparent and tracestate, set by the client from the span it is called in.)
 */
export interface CallMeta {
  requestId?: string;
}

const REQUEST_ID_KEY = "x-request-id";
const AUTHORIZATION_KEY = "authorization";

/** Observes failed calls of a client (metrics): the method path and the gRPC status code name. */
export type CallErrorObserver = (method: string, code: string) => void;

type AnyDefinition = ServiceDefinition;

/** Default deadline of one service-to-service call. */
export const DEFAULT_DEADLINE_MS = 3000;

export interface GrpcClient<D> {
  api: Api<D>;
  /** Opens a bidirectional stream of rpc `method` on the same channel, with the cluster's token. */
  openBidiStream<Req, Res>(method: BidiMethod<Req, Res>): ClientDuplexStream<Req, Res>;
  close(): void;
}

/** What a generated definition says of a bidirectional rpc. */
export interface BidiMethod<Req, Res> {
  path: string;
  requestSerialize: (value: Req) => Buffer;
  responseDeserialize: (bytes: Buffer) => Res;
}

export interface GrpcClientOptions {
  /** Deadline of each call (DEFAULT_DEADLINE_MS). */
  deadlineMs?: number;
  /** grpc-js channel options. */
  channel?: Partial<ClientOptions>;
  onError?: CallErrorObserver;
  /** The cluster's INTERNAL_AUTH_TOKEN, sent with every call; empty sends none. */
  authToken?: string;
  /** Mutual TLS (INTERNAL_TLS_*): the server must show a certificate of this CA, and this one is shown. */
  tls?: InternalTls;
  /** A call made inside a trace becomes a client span, its context sent as traceparent (see tracedCall). */
  tracing?: Tracing;
}

/**
 * A client of service `definition` at `address`. A failure the service raised rejects with its
 * AppError (code and message, from the ErrorDetail trailer); a transport failure (peer down,
 * deadline passed, a refused token) with AppError(UNAVAILABLE). A reply's own error field is
 * left to the caller.
 */
export function grpcClient<D extends AnyDefinition>(
  definition: D,
  address: string,
  options: GrpcClientOptions = {},
): GrpcClient<D> {
  const { deadlineMs = DEFAULT_DEADLINE_MS, onError, authToken } = options;
  const channelCredentials = options.tls
    ? credentials.createSsl(options.tls.ca, options.tls.key, options.tls.cert)
    : credentials.createInsecure();
  const client = new Client(address, channelCredentials, options.channel ?? {});
  const tracing = options.tracing?.enabled ? options.tracing : undefined;
  const api: Record<string, (req: unknown, meta?: CallMeta) => Promise<unknown>> = {};
  for (const [name, method] of Object.entries(definition)) {
    if (isStreaming(method)) continue;
    const call = (request: unknown, meta: CallMeta | undefined, trace?: TraceHeaders) =>
      new Promise((resolve, reject) => {
        const metadata = new Metadata();
        if (meta?.requestId) metadata.set(REQUEST_ID_KEY, meta.requestId);
        if (authToken) metadata.set(AUTHORIZATION_KEY, `Bearer ${authToken}`);
        if (trace) setTraceHeaders(metadata, trace);
        client.makeUnaryRequest(
          method.path,
          method.requestSerialize,
          method.responseDeserialize,
          request,
          metadata,
          { deadline: new Date(Date.now() + deadlineMs) },
          (err, reply) => {
            if (err) {
              onError?.(method.path, grpcStatus[err.code] ?? String(err.code));
              reject(appErrorOf(err, `${address}${method.path}`));
            } else resolve(reply);
          },
        );
      });
    api[name] = tracing ? tracedCall(tracing, method.path, address, call) : call;
  }
  return {
    api: api as Api<D>,
    openBidiStream: <Req, Res>(method: BidiMethod<Req, Res>) => {
      const metadata = new Metadata();
      if (authToken) metadata.set(AUTHORIZATION_KEY, `Bearer ${authToken}`);
      return client.makeBidiStreamRequest(method.path, method.requestSerialize, method.responseDeserialize, metadata);
    },
    close: () => client.close(),
  };
}

/**
 * Serves `impl` for `definition` on `server`: a thrown error becomes a gRPC status (failedCall).
 * Streaming rpcs are served by the handlers in `streams`, by name. With `tracing` on, a unary
 * call that carries a traceparent is served in a server span (see tracedHandler).
 */
export function addApi<D extends AnyDefinition>(
  server: Server,
  definition: D,
  impl: Api<D>,
  streams: Record<string, UntypedHandleCall> = {},
  tracing?: Tracing,
): void {
  const handlers: Record<string, UntypedHandleCall> = { ...streams };
  for (const [name, method] of Object.entries(definition)) {
    if (isStreaming(method)) {
      if (!streams[name]) throw new Error(`no stream handler for ${name}`);
      continue;
    }
    const fn = (impl as Record<string, (req: unknown, meta: CallMeta) => Promise<unknown>>)[name];
    if (!fn) throw new Error(`no implementation for ${name}`);
    const unary: handleUnaryCall<unknown, unknown> = (call, callback) => {
      const requestId = call.metadata.get(REQUEST_ID_KEY)[0];
      fn.call(impl, call.request, typeof requestId === "string" ? { requestId } : {}).then(
        (reply) => callback(null, reply),
        (err: unknown) => callback(failedCall(err)),
      );
    };
    handlers[name] = tracing?.enabled ? tracedHandler(tracing, method.path, unary) : unary;
  }
  server.addService(definition, handlers);
}

/** W3C trace context in metadata, under the same names as in HTTP headers. */
function setTraceHeaders(metadata: Metadata, trace: TraceHeaders): void {
  if (trace.traceparent) metadata.set("traceparent", trace.traceparent);
  if (trace.tracestate) metadata.set("tracestate", trace.tracestate);
}

/** "shardchat.v1.StatusService/IssueToken" for "/shardchat.v1.StatusService/IssueToken": a gRPC span's name. */
function rpcName(path: string): string {
  return path.startsWith("/") ? path.slice(1) : path;
}

function rpcAttributes(path: string): Record<string, string> {
  return { "rpc.system.name": "grpc", "rpc.method": rpcName(path) };
}

/**
 * Ends a span with a call's outcome: a rejection, or a reply whose own error field carries a
 * code of the error table (most of our rpcs answer refusals that way).
 */
function endWith(span: TraceSpan, outcome: Promise<unknown>): void {
  outcome.then(
    (reply) => {
      const code = (reply as { error?: unknown } | undefined)?.error;
      span.end(typeof code === "number" && code !== ErrorCode.OK ? new AppError(code) : undefined);
    },
    (err: unknown) => span.end(err),
  );
}

/**
 * A client call inside a trace (an HTTP request's, a chat send's, a traced call's own) is a
 * client span whose context travels as traceparent; one outside any (heartbeats, ring checks,
 * lookups of background jobs) is made as it is, and adds no trace of one span.
 */
function tracedCall(
  tracing: Tracing,
  path: string,
  address: string,
  call: (request: unknown, meta: CallMeta | undefined, trace?: TraceHeaders) => Promise<unknown>,
): (request: unknown, meta?: CallMeta) => Promise<unknown> {
  const name = rpcName(path);
  const attributes = { ...rpcAttributes(path), "server.address": address };
  return (request, meta) => {
    const span = tracing.childSpan(name, { kind: "client", attributes });
    if (!span) return call(request, meta);
    const outcome = call(request, meta, span.headers());
    endWith(span, outcome);
    return outcome;
  };
}

/**
 * A call that carries a traceparent is served in a server span, its caller's child, active
 * while the implementation runs (the calls it makes continue the trace); a call without one is
 * served as it is (see tracedCall).
 */
function tracedHandler(
  tracing: Tracing,
  path: string,
  unary: handleUnaryCall<unknown, unknown>,
): handleUnaryCall<unknown, unknown> {
  const name = rpcName(path);
  const attributes = rpcAttributes(path);
  return (call, callback) => {
    const remoteParent = traceHeadersOf((key) => call.metadata.get(key));
    if (!remoteParent) {
      unary(call, callback);
      return;
    }
    const span = tracing.startSpan(name, { kind: "server", remoteParent, attributes });
    const outcome = new Promise<unknown>((resolve, reject) => {
      tracing.withSpan(span, () =>
        unary(call, (err, reply) => {
          callback(err, reply);
          if (err) reject(appErrorOf(err as ServiceError, name));
          else resolve(reply);
        }),
      );
    });
    endWith(span, outcome);
  };
}

const ERROR_DETAIL_KEY = "shardchat-error-bin";

/**
 * A thrown error as a gRPC status: the nearest gRPC code (for tools that read only that), and
 * the error table's code and message as an ErrorDetail trailer, which grpcClient turns back into
 * the same AppError. Anything that is not an AppError is INTERNAL.
 */
export function failedCall(err: unknown): Partial<StatusObject> {
  const code = codeOf(err);
  const message = err instanceof Error ? err.message : String(err);
  const metadata = new Metadata();
  metadata.set(ERROR_DETAIL_KEY, Buffer.from(ErrorDetail.encode({ code, message }).finish()));
  return { code: grpcCodeOf(code), details: `${errorName(code)}: ${message}`, metadata };
}

/** The AppError a failed call stands for (see failedCall); UNAVAILABLE when it carries none. */
function appErrorOf(err: ServiceError, where: string): AppError {
  const detail = err.metadata?.get(ERROR_DETAIL_KEY)[0];
  if (Buffer.isBuffer(detail)) {
    try {
      const { code, message } = ErrorDetail.decode(detail);
      return new AppError(code, message);
    } catch {
      // Not ours after all: a transport failure as below.
    }
  }
  return new AppError(ErrorCode.UNAVAILABLE, `${where}: ${err.details || err.message}`);
}

/** By the code's HTTP status (the one table in errors.ts), as gRPC's HTTP mapping reads it. */
function grpcCodeOf(code: ErrorCode): grpcStatus {
  switch (httpStatusOf(code)) {
    case 400:
    case 413:
    case 415:
      return grpcStatus.INVALID_ARGUMENT;
    case 401:
      return grpcStatus.UNAUTHENTICATED;
    case 403:
      return grpcStatus.PERMISSION_DENIED;
    case 404:
      return grpcStatus.NOT_FOUND;
    case 409:
      return grpcStatus.ALREADY_EXISTS;
    case 429:
      return grpcStatus.RESOURCE_EXHAUSTED;
    case 502:
    case 503:
      return grpcStatus.UNAVAILABLE;
    default:
      return grpcStatus.INTERNAL;
  }
}

/** Compared as digests: equal length, so the comparison takes the same time whatever is sent. */
const digest = (s: string) => createHash("sha256").update(s).digest();

/**
 * Refuses (UNAUTHENTICATED) a call that does not carry `Bearer <token>`, before its handler
 * runs. A shared secret, not mTLS: it keeps callers that can reach the port but are not part of
 * the cluster out; it does not encrypt (see SECURITY.md).
 */
export function requireAuthToken(token: string): ServerInterceptor {
  const expected = digest(`Bearer ${token}`);
  return (_method, call) =>
    new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, pass) => {
            const sent = metadata.get(AUTHORIZATION_KEY)[0];
            if (typeof sent === "string" && timingSafeEqual(digest(sent), expected)) {
              pass(metadata);
              return;
            }
            // As any refusal: UNAUTHENTICATED with the code the caller's AppError carries.
            const refusal = failedCall(
              new AppError(ErrorCode.TOKEN_INVALID, "an internal call without this cluster's INTERNAL_AUTH_TOKEN"),
            );
            call.sendStatus({
              code: refusal.code ?? grpcStatus.UNAUTHENTICATED,
              details: refusal.details ?? "",
              metadata: refusal.metadata,
            });
          },
        }),
    });
}

export interface GrpcServerOptions {
  /**
   * The cluster's INTERNAL_AUTH_TOKEN: calls without it are refused. Empty: no check, which
   * only a listener on loopback may have (startGrpcServer refuses any other), unless `tls`.
   */
  authToken?: string;
  /** Mutual TLS (INTERNAL_TLS_*): callers must show a certificate of this CA. */
  tls?: InternalTls;
}

const LOOPBACK = /^(127\.|localhost:|\[::1\]:)/;

/** A bind address that listens on every interface. */
export function isWildcard(host: string): boolean {
  return host === "0.0.0.0" || host === "::" || host === "[::]" || host === "";
}

/** Throws OpenGrpcError for a gRPC listener beyond loopback without a token. */
export function requireTokenBeyondLoopback(
  address: string,
  authToken: string | undefined,
  tls: InternalTls | undefined,
): void {
  if (!authToken && !tls && !LOOPBACK.test(address)) throw new OpenGrpcError(address);
}

/** A service with internal gRPC open beyond loopback and no INTERNAL_AUTH_TOKEN: it must not start. */
export class OpenGrpcError extends Error {
  constructor(address: string) {
    super(
      `internal gRPC would listen on ${address}, beyond loopback, without INTERNAL_AUTH_TOKEN or mutual TLS: anyone who reaches it could mint tokens, push messages or move users. Set INTERNAL_AUTH_TOKEN (openssl rand -hex 32) or INTERNAL_TLS_* on every service, or listen on 127.0.0.1.`,
    );
    this.name = "OpenGrpcError";
  }
}

/** Binds a new gRPC server on `address` (port 0 picks a free one) and answers the bound port. */
export async function startGrpcServer(
  address: string,
  register: (server: Server) => void,
  options: GrpcServerOptions = {},
): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  requireTokenBeyondLoopback(address, options.authToken, options.tls);
  const server = new Server({
    "grpc.max_receive_message_length": 4 * 1024 * 1024,
    interceptors: options.authToken ? [requireAuthToken(options.authToken)] : [],
  });
  register(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      address,
      options.tls
        ? ServerCredentials.createSsl(
            options.tls.ca,
            [{ private_key: options.tls.key, cert_chain: options.tls.cert }],
            true,
          )
        : ServerCredentials.createInsecure(),
      (err, p) => (err ? reject(err) : resolve(p)),
    ),
  );
  return {
    server,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.forceShutdown(), 2000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}
