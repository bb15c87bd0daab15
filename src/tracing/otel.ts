// The OpenTelemetry adapter of the tracing port. Only createTracing imports it, dynamically and
// only with TRACING_OTLP_URL set: a process with tracing off never loads the SDK.
import {
  type Context,
  defaultTextMapGetter,
  defaultTextMapSetter,
  SpanKind as OtelSpanKind,
  ROOT_CONTEXT,
  type Span,
  SpanStatusCode,
  TraceFlags,
  trace,
} from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { type ExportResult, ExportResultCode, W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BatchSpanProcessor,
  ParentBasedSampler,
  type ReadableSpan,
  type SpanExporter,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from "@opentelemetry/sdk-trace";
import {
  ATTR_ERROR_TYPE,
  ATTR_SERVICE_INSTANCE_ID,
  ATTR_SERVICE_NAME,
  ATTR_SERVICE_NAMESPACE,
} from "@opentelemetry/semantic-conventions";
import { AppError, errorName } from "../errors.js";
import type { Logger } from "../log/logger.js";
import type { SpanKind, SpanOptions, TraceHeaders, TraceSpan, Tracing } from "./ports.js";

export interface OtelTracingOptions {
  /** The OTLP/HTTP traces endpoint (TRACING_OTLP_URL). */
  url: string;
  /** TRACING_SAMPLE_RATIO: for new traces; a caller's traceparent decides for its own. */
  sampleRatio: number;
  exportIntervalMs: number;
  queueMax: number;
  /** service.name ("shardchat-chat") and service.instance.id (a chat node's CHAT_NODE_ID). */
  service: string;
  instance: string;
  log: Logger;
}

const KINDS: Record<SpanKind, OtelSpanKind> = {
  server: OtelSpanKind.SERVER,
  client: OtelSpanKind.CLIENT,
  internal: OtelSpanKind.INTERNAL,
  producer: OtelSpanKind.PRODUCER,
  consumer: OtelSpanKind.CONSUMER,
};

/**
 * Spans through an SDK of this instance's own: its provider, context manager and propagator are
 * not registered as OpenTelemetry's globals, so nothing else in the process changes behaviour.
 */
export class OtelTracing implements Tracing {
  readonly enabled = true;
  readonly #provider: TracerProvider;
  readonly #tracer;
  readonly #contexts = new AsyncLocalStorageContextManager().enable();
  readonly #propagator = new W3CTraceContextPropagator();

  constructor(options: OtelTracingOptions) {
    const exporter = new LoggedExporter(new OTLPTraceExporter({ url: options.url }), options.url, options.log);
    this.#provider = new TracerProvider({
      resource: resourceFromAttributes({
        [ATTR_SERVICE_NAMESPACE]: "shardchat",
        [ATTR_SERVICE_NAME]: options.service,
        [ATTR_SERVICE_INSTANCE_ID]: options.instance,
      }),
      sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(options.sampleRatio) }),
      spanProcessors: [
        new BatchSpanProcessor({
          exporter,
          scheduledDelayMillis: options.exportIntervalMs,
          maxQueueSize: options.queueMax,
          maxExportBatchSize: Math.min(512, options.queueMax),
        }),
      ],
    });
    this.#tracer = this.#provider.getTracer("shardchat");
  }

  startSpan(name: string, options: SpanOptions): TraceSpan {
    let parent: Context;
    if (options.parent instanceof OtelSpan) parent = options.parent.context;
    else if (options.remoteParent)
      parent = this.#propagator.extract(ROOT_CONTEXT, options.remoteParent, defaultTextMapGetter);
    else parent = this.#contexts.active();
    return this.#start(name, options, parent);
  }

  childSpan(name: string, options: Omit<SpanOptions, "remoteParent" | "parent">): TraceSpan | undefined {
    const active = this.#contexts.active();
    return trace.getSpan(active) ? this.#start(name, options, active) : undefined;
  }

  withSpan<T>(span: TraceSpan, fn: () => T): T {
    return span instanceof OtelSpan ? this.#contexts.with(span.context, fn) : fn();
  }

  async close(): Promise<void> {
    await this.#provider.shutdown();
    this.#contexts.disable();
  }

  #start(name: string, options: Pick<SpanOptions, "kind" | "attributes">, parent: Context): OtelSpan {
    const span = this.#tracer.startSpan(name, { kind: KINDS[options.kind], attributes: options.attributes }, parent);
    return new OtelSpan(span, trace.setSpan(parent, span), this.#propagator);
  }
}

class OtelSpan implements TraceSpan {
  constructor(
    private readonly span: Span,
    /** The context with this span in it: its children's parent. */
    readonly context: Context,
    private readonly propagator: W3CTraceContextPropagator,
  ) {}

  get sampled(): boolean {
    return (this.span.spanContext().traceFlags & TraceFlags.SAMPLED) !== 0;
  }

  setAttribute(key: string, value: string | number | boolean): void {
    this.span.setAttribute(key, value);
  }

  headers(): TraceHeaders {
    const carrier: TraceHeaders = {};
    this.propagator.inject(this.context, carrier, defaultTextMapSetter);
    return carrier;
  }

  end(error?: unknown): void {
    if (error !== undefined) {
      // A string names the failure itself (an HTTP status); an error is named by the error table.
      const type = typeof error === "string" ? error : error instanceof AppError ? errorName(error.code) : "INTERNAL";
      this.span.setAttribute(ATTR_ERROR_TYPE, type);
      this.span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : type });
    }
    this.span.end();
  }
}

/**
 * The OTLP exporter, telling the log when exports start failing (a collector down or refusing)
 * and when they work again: once each, not once per batch.
 */
class LoggedExporter implements SpanExporter {
  #failing = false;

  constructor(
    private readonly inner: SpanExporter,
    private readonly url: string,
    private readonly log: Logger,
  ) {}

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.inner.export(spans, (result) => {
      if (result.code !== ExportResultCode.SUCCESS) {
        if (!this.#failing) {
          this.log.warn(
            { err: result.error, url: this.url, spans: spans.length },
            "traces not exported; spans are dropped until the collector answers",
          );
        }
        this.#failing = true;
      } else if (this.#failing) {
        this.#failing = false;
        this.log.info({ url: this.url }, "traces exported again");
      }
      done(result);
    });
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}
