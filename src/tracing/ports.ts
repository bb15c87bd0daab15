/**
 * W3C trace context as it travels between processes: HTTP headers, gRPC metadata, and a
 * PushItem's fields on the chat nodes' Push stream.
 */
export interface TraceHeaders {
  traceparent?: string | undefined;
  tracestate?: string | undefined;
}

export type SpanKind = "server" | "client" | "internal" | "producer" | "consumer";

export type SpanAttributes = Record<string, string | number | boolean>;

export interface SpanOptions {
  kind: SpanKind;
  /** A caller's context (incoming headers); a missing or bad traceparent starts a new trace. */
  remoteParent?: TraceHeaders;
  /** A span of this process, passed by hand where no async context carries it (the fan-out's pushes). */
  parent?: TraceSpan;
  attributes?: SpanAttributes;
}

export interface TraceSpan {
  /** Whether this span is recorded and exported (the sampler's decision, or its caller's). */
  readonly sampled: boolean;
  setAttribute(key: string, value: string | number | boolean): void;
  /** This span's context for an outgoing carrier: its children elsewhere name it as their parent. */
  headers(): TraceHeaders;
  /** Ends the span: OK, or ERROR with the error table's name of `error` (an AppError's code, else INTERNAL). */
  end(error?: unknown): void;
}

/**
 * The tracing port: spans at our own seams (gate's HTTP routes, every gRPC call between
 * services, a chat send, its delivery on the recipient's node). Two adapters: OpenTelemetry
 * (src/tracing/otel.ts, loaded only when TRACING_OTLP_URL is set) and `noTracing`. Callers on a
 * hot path test `enabled` before building anything for a span, so tracing off costs that test.
 */
export interface Tracing {
  readonly enabled: boolean;
  /** A span that starts here: a request that entered this process, or a new trace. */
  startSpan(name: string, options: SpanOptions): TraceSpan;
  /**
   * A span under the one active in this async context (withSpan), or undefined outside any
   * trace: background calls (heartbeats, ring checks) make no one-span traces.
   */
  childSpan(name: string, options: Omit<SpanOptions, "remoteParent" | "parent">): TraceSpan | undefined;
  /** Runs fn with span active: what it starts, and the gRPC calls it makes, become its children. */
  withSpan<T>(span: TraceSpan, fn: () => T): T;
  /** Exports what has ended and stops (the last close of a process). */
  close(): Promise<void>;
}

const NO_SPAN: TraceSpan = {
  sampled: false,
  setAttribute: () => undefined,
  headers: () => ({}),
  end: () => undefined,
};

/** Tracing off: nothing is recorded, nothing carried, nothing loaded. */
export const noTracing: Tracing = {
  enabled: false,
  startSpan: () => NO_SPAN,
  childSpan: () => undefined,
  withSpan: (_span, fn) => fn(),
  close: async () => undefined,
};

/** The trace context of incoming headers (HTTP or gRPC metadata read into strings), if any. */
export function traceHeadersOf(get: (key: string) => unknown): TraceHeaders | undefined {
  const traceparent = first(get("traceparent"));
  if (traceparent === undefined) return undefined;
  const tracestate = first(get("tracestate"));
  return tracestate === undefined ? { traceparent } : { traceparent, tracestate };
}

function first(value: unknown): string | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  return typeof v === "string" && v !== "" ? v : undefined;
}
