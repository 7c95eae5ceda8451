// One OpenTelemetry server span per HTTP request (only when tracing is on, src/tracing.ts): named by
// method and route pattern (`POST /v1/sessions`), continuing a caller's W3C `traceparent` when it sends
// one, and active while the route's handler runs, so the Temporal client's StartWorkflow span (and
// everything after it, the workflow and its activities) is its child. Like the request log line, it
// carries the route pattern, never the raw URL, its query or any header.
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, propagation, trace, type Span, type Tracer } from '@opentelemetry/api';
import type { FastifyInstance, FastifyRequest, RouteHandlerMethod } from 'fastify';

/** Registers the hooks; call before any route is added (handlers are wrapped as routes are added). */
export function traceRequests(app: FastifyInstance, tracer: Tracer): void {
  const spans = new WeakMap<FastifyRequest, Span>();
  const end = (req: FastifyRequest, status?: number) => {
    const span = spans.get(req);
    if (!span) return;
    spans.delete(req);
    if (status !== undefined) {
      span.setAttribute('http.response.status_code', status);
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
    } else {
      span.setStatus({ code: SpanStatusCode.ERROR, message: 'the client went away before the answer' });
    }
    span.end();
  };

  app.addHook('onRoute', (route) => {
    const handler = route.handler as RouteHandlerMethod;
    route.handler = function tracedHandler(this: FastifyInstance, req, reply) {
      const span = spans.get(req);
      if (!span) return handler.call(this, req, reply);
      return context.with(trace.setSpan(context.active(), span), () => handler.call(this, req, reply));
    };
  });
  app.addHook('onRequest', async (req) => {
    const route = req.routeOptions.url;
    const parent = propagation.extract(ROOT_CONTEXT, req.headers);
    const span = tracer.startSpan(
      route ? `${req.method} ${route}` : req.method,
      {
        kind: SpanKind.SERVER,
        attributes: { 'http.request.method': req.method, ...(route ? { 'http.route': route } : {}), 'url.scheme': req.protocol },
      },
      parent,
    );
    spans.set(req, span);
    const ids = span.spanContext();
    // Every line this request logs (its `request` line included) names its trace.
    if (span.isRecording()) req.log = req.log.child({ trace_id: ids.traceId, span_id: ids.spanId });
  });
  app.addHook('onError', async (req, _reply, err) => {
    spans.get(req)?.recordException(err);
  });
  app.addHook('onResponse', async (req, reply) => end(req, reply.statusCode));
  app.addHook('onRequestAbort', async (req) => end(req));
}
