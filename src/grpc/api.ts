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
  type UntypedHandleCall,
} from "@grpc/grpc-js";
import { AppError, codeOf, ErrorCode } from "../errors.js";
import type { Logger } from "../log/logger.js";

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
 * serves, so the log lines of every service it crosses can be joined.
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
}

/**
 * A client of service `definition` at `address`. A transport failure (peer down, deadline
 * passed, a refused token) rejects with AppError(UNAVAILABLE); a reply's own error code is left
 * to the caller.
 */
export function grpcClient<D extends AnyDefinition>(
  definition: D,
  address: string,
  options: GrpcClientOptions = {},
): GrpcClient<D> {
  const { deadlineMs = DEFAULT_DEADLINE_MS, onError, authToken } = options;
  const client = new Client(address, credentials.createInsecure(), options.channel ?? {});
  const api: Record<string, (req: unknown, meta?: CallMeta) => Promise<unknown>> = {};
  for (const [name, method] of Object.entries(definition)) {
    if (isStreaming(method)) continue;
    api[name] = (request, meta) =>
      new Promise((resolve, reject) => {
        const metadata = new Metadata();
        if (meta?.requestId) metadata.set(REQUEST_ID_KEY, meta.requestId);
        if (authToken) metadata.set(AUTHORIZATION_KEY, `Bearer ${authToken}`);
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
              reject(new AppError(ErrorCode.UNAVAILABLE, `${address}${method.path}: ${err.details || err.message}`));
            } else resolve(reply);
          },
        );
      });
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
 * Serves `impl` for `definition` on `server`: a thrown AppError becomes gRPC status with its code
 * in the details. Streaming rpcs are served by the handlers in `streams`, by name.
 */
export function addApi<D extends AnyDefinition>(
  server: Server,
  definition: D,
  impl: Api<D>,
  streams: Record<string, UntypedHandleCall> = {},
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
        (err: unknown) =>
          callback({
            code: grpcStatus.INTERNAL,
            details: `${codeOf(err)}: ${err instanceof Error ? err.message : String(err)}`,
          }),
      );
    };
    handlers[name] = unary;
  }
  server.addService(definition, handlers);
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
            call.sendStatus({
              code: grpcStatus.UNAUTHENTICATED,
              details: `${ErrorCode.TOKEN_INVALID}: an internal call without this cluster's INTERNAL_AUTH_TOKEN`,
            });
          },
        }),
    });
}

export interface GrpcServerOptions {
  /** The cluster's INTERNAL_AUTH_TOKEN: calls without it are refused. Empty: no check. */
  authToken?: string;
  /** Told when the server is open to other hosts without a token. */
  log?: Pick<Logger, "warn">;
}

const LOOPBACK = /^(127\.|localhost:|\[::1\]:)/;

/** Binds a new gRPC server on `address` (port 0 picks a free one) and answers the bound port. */
export async function startGrpcServer(
  address: string,
  register: (server: Server) => void,
  options: GrpcServerOptions = {},
): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const server = new Server({
    "grpc.max_receive_message_length": 4 * 1024 * 1024,
    interceptors: options.authToken ? [requireAuthToken(options.authToken)] : [],
  });
  register(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  if (!options.authToken && !LOOPBACK.test(address)) {
    options.log?.warn(
      { address },
      "internal gRPC listens beyond loopback without INTERNAL_AUTH_TOKEN: anyone who reaches it can call it",
    );
  }
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
