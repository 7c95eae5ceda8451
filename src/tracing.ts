// OpenTelemetry traces: one trace from `POST /v1/sessions` (the API's server span) through the
// client's StartWorkflow, the workflow run and every activity it schedules (local ones included), with
// Temporal's OpenTelemetry interceptors carrying the context in Temporal headers. Workflow spans are
// made inside the workflow sandbox and leave it through a sink (`exporter`); the worker hands them to
// the same span processor as everything else.
//
// Off unless the standard OTEL_* variables ask for it (OTEL_TRACES_EXPORTER=otlp|console, or an OTLP
// endpoint): then `startTracing` returns undefined, no SDK module is even loaded, and what remains is
// OpenTelemetry's no-op API (the log mixin's one `getActiveSpan()` per line) and, in the workflow,
// interceptors that pass every call straight through (workflows/tracing.ts: a run is traced only
// when its start carried a trace context, which is in its history, so turning tracing on or off
// never changes how a running session replays).
import type { Tracer } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import type { SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { ClientInterceptors, WorkflowClientInterceptor } from '@temporalio/client';
import type { WorkerOptions as TemporalWorkerOptions } from '@temporalio/worker';
import type { WorkflowInfo } from '@temporalio/workflow';
import type { SerializableSpan } from '@temporalio/interceptors-opentelemetry';
import type { Logger } from 'pino';
import type { Env } from './config';

/**
 * The workflow interceptor modules of every workflow bundle, traced or not (workflows/tracing.ts:
 * RunWorkflow, handler and StartActivity spans for runs started with a trace context, nothing for
 * the others). Every bundle and every replay includes them, so all run the same code.
 */
export const WORKFLOW_INTERCEPTOR_MODULES: readonly string[] = [require.resolve('../workflows/tracing')];

/** The workflow-span sink of a worker that does not trace: spans of traced runs are dropped. */
export const NO_TRACING_SINKS = { exporter: { export: { fn: () => undefined } } } satisfies TemporalWorkerOptions['sinks'];

/** What the OTEL_* variables ask for; undefined: tracing off. */
export interface TracingSettings {
  exporters: ('otlp' | 'console')[];
  /** OTEL_SERVICE_NAME, which wins over the process's default name. */
  serviceName?: string;
}

/**
 * Reads the OTEL_* variables (already validated by src/config.ts's schema). Tracing is on when
 * OTEL_TRACES_EXPORTER names an exporter, or when it is unset and an OTLP endpoint is set; off when
 * OTEL_SDK_DISABLED=true, OTEL_TRACES_EXPORTER=none or nothing is set. (OpenTelemetry's own default
 * would export to localhost:4318 with nothing set; this service stays quiet instead.)
 */
export function tracingSettings(
  env: Pick<Env, 'OTEL_SDK_DISABLED' | 'OTEL_TRACES_EXPORTER' | 'OTEL_EXPORTER_OTLP_ENDPOINT' | 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' | 'OTEL_SERVICE_NAME'>,
): TracingSettings | undefined {
  if (env.OTEL_SDK_DISABLED) return undefined;
  const named = env.OTEL_TRACES_EXPORTER?.split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  const exporters = named ?? (env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ? ['otlp'] : []);
  if (exporters.length === 0 || exporters.includes('none')) return undefined;
  return { exporters: [...new Set(exporters)] as TracingSettings['exporters'], serviceName: env.OTEL_SERVICE_NAME };
}

/**
 * What of the workflow's info goes onto its spans: the sink would copy all of it (memo, search
 * attributes, last result…), which may hold what a trace backend should not see and is no valid
 * attribute anyway. Ids, type, queue, namespace and attempt are what a span needs.
 */
function spanInfo(info: WorkflowInfo): WorkflowInfo {
  const { workflowId, runId, workflowType, taskQueue, namespace, attempt } = info;
  return { workflowId, runId, workflowType, taskQueue, namespace, attempt } as WorkflowInfo;
}

/** The client calls Temporal's OpenTelemetry client interceptor makes spans of. */
const CLIENT_CALLS = [
  'start',
  'startWithDetails',
  'signal',
  'signalWithStart',
  'startUpdate',
  'startUpdateWithStart',
  'query',
  'terminate',
  'cancel',
  'describe',
] as const;

/**
 * The client interceptor, for calls made inside a span only (a request's, a traced activity's): the
 * admission controller's housekeeping (describing closed workflows every 30 s) and other calls
 * outside any traced work would each be a trace of one span.
 */
function withinSpansOnly(inner: WorkflowClientInterceptor, trace: typeof import('@opentelemetry/api').trace): WorkflowClientInterceptor {
  const out: Record<string, unknown> = {};
  const calls = inner as unknown as Record<string, (input: unknown, next: (input: unknown) => unknown) => unknown>;
  for (const name of CLIENT_CALLS) {
    out[name] = (input: unknown, next: (input: unknown) => unknown) => (trace.getActiveSpan() ? calls[name]!.call(inner, input, next) : next(input));
  }
  return out;
}

/** A started tracing SDK: what the API, the Temporal clients and the workers plug in. */
export interface Tracing {
  /** The API's tracer (server spans). */
  readonly tracer: Tracer;
  readonly spanProcessor: SpanProcessor;
  readonly resource: Resource;
  /** Client interceptors: StartWorkflow, SignalWorkflow, StartWorkflowUpdate, QueryWorkflow… spans, context in headers. */
  clientInterceptors(): ClientInterceptors;
  /**
   * Worker options: activity spans (RunActivity), the workflow-span sink, and the client interceptors
   * for activities that start or signal workflows. (The workflow modules are in every bundle:
   * WORKFLOW_INTERCEPTOR_MODULES.)
   */
  workerOptions(): Required<Pick<TemporalWorkerOptions, 'sinks'>> & {
    interceptors: {
      client: { workflow: NonNullable<ClientInterceptors['workflow']> };
      activity: NonNullable<NonNullable<TemporalWorkerOptions['interceptors']>['activity']>;
    };
  };
  /** Exports what is buffered (tests; before reading an in-memory exporter). */
  forceFlush(): Promise<void>;
  /** Flushes and stops; call once when the process stops. */
  shutdown(): Promise<void>;
}

export interface StartTracingOptions {
  /** This process's service name (OTEL_SERVICE_NAME wins). */
  serviceName: string;
  /** Tests: export to this exporter, each span as it ends (a SimpleSpanProcessor) instead of the OTEL_* exporters. */
  exporter?: SpanExporter;
  /** Where OpenTelemetry's own warnings and errors go (a collector that cannot be reached, a dropped batch). */
  log?: Logger;
}

/**
 * Starts the OpenTelemetry SDK for this process when `settings` says so (else undefined and nothing
 * is loaded): a Node tracer provider registered globally (AsyncLocalStorage context, W3C trace
 * context and baggage propagation, sampler from OTEL_TRACES_SAMPLER), batching its spans to the OTLP
 * exporter (endpoint, headers, timeout and compression from the OTEL_EXPORTER_OTLP_* variables).
 */
export async function startTracing(settings: TracingSettings | undefined, opts: StartTracingOptions): Promise<Tracing | undefined> {
  if (!settings && !opts.exporter) return undefined;
  const [api, { NodeTracerProvider }, base, resources, interceptors, { TRACE_HEADER }] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/resources'),
    import('@temporalio/interceptors-opentelemetry'),
    import('@temporalio/interceptors-opentelemetry/lib/instrumentation'),
  ]);
  const log = opts.log;
  if (log) {
    const warn = (message: string, ...args: unknown[]) => log.warn({ component: 'opentelemetry', details: args.map(String) }, message);
    api.diag.setLogger({ error: warn, warn, info: () => undefined, debug: () => undefined, verbose: () => undefined }, api.DiagLogLevel.WARN);
  }
  const processors: SpanProcessor[] = [];
  if (opts.exporter) processors.push(new base.SimpleSpanProcessor(opts.exporter));
  for (const kind of opts.exporter ? [] : (settings?.exporters ?? [])) {
    if (kind === 'console') processors.push(new base.SimpleSpanProcessor(new base.ConsoleSpanExporter()));
    else {
      const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-proto');
      processors.push(new base.BatchSpanProcessor(new OTLPTraceExporter()));
    }
  }
  // Defaults, then the process's name, then OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME.
  const resource = resources.Resource.default()
    .merge(new resources.Resource({ 'service.name': opts.serviceName }))
    .merge(resources.detectResourcesSync({ detectors: [resources.envDetectorSync] }));
  const provider = new NodeTracerProvider({ resource, spanProcessors: processors });
  provider.register();
  const spanProcessor = provider.getActiveSpanProcessor();
  const clientInterceptor = withinSpansOnly(new interceptors.OpenTelemetryWorkflowClientInterceptor(), api.trace);
  const workflowSpans = interceptors.makeWorkflowExporter(spanProcessor, resource);
  return {
    tracer: provider.getTracer('avatar-sessions'),
    spanProcessor,
    resource,
    clientInterceptors: () => ({ workflow: [clientInterceptor] }),
    workerOptions: () => ({
      interceptors: {
        client: { workflow: [clientInterceptor] },
        // Like the workflow (workflows/tracing.ts), an activity is traced when its workflow run is:
        // its schedule carried a trace context. Untraced runs leave no stray root spans.
        activity: [
          (ctx) => {
            const traced = new interceptors.OpenTelemetryActivityInboundInterceptor(ctx);
            return {
              inbound: { execute: (input, next) => (input.headers[TRACE_HEADER] !== undefined ? traced.execute(input, next) : next(input)) },
              outbound: new interceptors.OpenTelemetryActivityOutboundInterceptor(ctx),
            };
          },
        ],
      },
      sinks: { exporter: { export: { fn: (info: WorkflowInfo, spans: SerializableSpan[]) => workflowSpans.export.fn(spanInfo(info), spans) } } },
    }),
    forceFlush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
}
