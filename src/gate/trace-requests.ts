import type { FastifyInstance, FastifyRequest, RouteHandlerMethod } from "fastify";
import { type TraceSpan, type Tracing, traceHeadersOf } from "../tracing/ports.js";

/**
 * A server span per request to `app` ("POST /v1/login"), the child of the caller's when the
 * request carries a W3C traceparent. It starts when the request arrives and ends with the
 * response (ERROR on a 5xx); the route's handler runs with it active, so the gRPC calls it makes
 * (status, verify, chat nodes) continue the trace. Install before the routes are registered.
 */
export function traceRequests(app: FastifyInstance, tracing: Tracing): void {
  const spans = new WeakMap<FastifyRequest, TraceSpan>();
  app.addHook("onRequest", async (request) => {
    const route = request.routeOptions.url;
    const attributes: Record<string, string> = {
      "http.request.method": request.method,
      "url.path": request.url.split("?", 1)[0] ?? "",
      "shardchat.request_id": request.id,
    };
    if (route !== undefined) attributes["http.route"] = route;
    const remoteParent = traceHeadersOf((key) => request.headers[key]);
    const name = route === undefined ? request.method : `${request.method} ${route}`;
    spans.set(request, tracing.startSpan(name, { kind: "server", remoteParent, attributes }));
  });
  // A handler is what makes the calls to other services: it runs in its request's span.
  app.addHook("onRoute", (route) => {
    const handler = route.handler as RouteHandlerMethod;
    route.handler = function tracedHandler(this: FastifyInstance, request, reply) {
      const span = spans.get(request);
      return span
        ? tracing.withSpan(span, () => handler.call(this, request, reply))
        : handler.call(this, request, reply);
    };
  });
  app.addHook("onResponse", async (request, reply) => {
    const span = spans.get(request);
    if (!span) return;
    spans.delete(request);
    span.setAttribute("http.response.status_code", reply.statusCode);
    span.end(reply.statusCode >= 500 ? String(reply.statusCode) : undefined);
  });
  app.addHook("onRequestAbort", async (request) => {
    const span = spans.get(request);
    if (!span) return;
    spans.delete(request);
    span.end("aborted");
  });
}
