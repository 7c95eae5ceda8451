// Workflow interceptors for OpenTelemetry, in every workflow bundle of this service (not a workflow:
// src/bundle-workflows.ts, src/workers.ts and the replay test register it as an interceptor module).
//
// Temporal's OpenTelemetry workflow interceptors change when the workflow's promises settle (spans
// wrap every activity, signal and update in async functions): a history written with them does not
// replay without them, and the reverse. So whether a run is traced cannot follow the worker's
// configuration (switching tracing on would break every running session at the next replay); it
// follows the history instead: a run is traced when its start carried a trace context (the
// `_tracer-data` header the client interceptor writes when the API traces), and a signal, update or
// query when it carried one. Everything else passes straight through: no span, no tracer, no extra
// await, the same commands as a bundle without tracing at all. Workers always register the
// `exporter` sink (a no-op when they do not trace, src/tracing.ts).
//
// Only session runs are traced as runs. The admission controller is one long-lived workflow that
// every session talks to: traced as a run, it would sit forever in the trace of the session whose
// activity happened to start it, with every later session's grants under it. Its handlers of traced
// signals (a session's requestSlot) are traced, in the trace of the session that sent them.
//
// OpenTelemetry's workflow module is required on a traced run's first use only, never imported: every
// module a workflow imports is evaluated again for each run the worker holds (the reusable V8 context
// keeps module state per run), and OpenTelemetry is about 670 KB of code that an untraced run would
// evaluate and keep in memory for nothing.
import type { Headers } from '@temporalio/common';
import type * as OtelWorkflow from '@temporalio/interceptors-opentelemetry/lib/workflow';
import {
  workflowInfo,
  type WorkflowInboundCallsInterceptor,
  type WorkflowInterceptors,
  type WorkflowInternalsInterceptor,
  type WorkflowOutboundCallsInterceptor,
} from '@temporalio/workflow';

/** The header a traced client or workflow writes (`TRACE_HEADER` of @temporalio/interceptors-opentelemetry; test/workflow-bundle.test.ts checks they agree). */
export const TRACE_HEADER = '_tracer-data';

let otel: typeof OtelWorkflow | undefined;
// eslint-disable-next-line @typescript-eslint/no-require-imports, no-restricted-globals -- lazy on purpose (see the header): webpack bundles the module, a traced run evaluates it (deterministic: no I/O)
const loadOtel = (): typeof OtelWorkflow => (otel ??= require('@temporalio/interceptors-opentelemetry/lib/workflow') as typeof OtelWorkflow);

/** The workflow types whose runs are traced (when their start carries a trace context). */
const TRACED_RUNS: ReadonlySet<string> = new Set(['avatarSession']);

const carriesTrace = (headers: Headers | undefined): boolean => headers?.[TRACE_HEADER] !== undefined;

/** The interceptors of one workflow run (the SDK calls this once per run). */
export const interceptors = (): WorkflowInterceptors => {
  // Made on first use only: an untraced run never builds a tracer.
  let otelIn: OtelWorkflow.OpenTelemetryInboundInterceptor | undefined;
  let otelOut: OtelWorkflow.OpenTelemetryOutboundInterceptor | undefined;
  const tracedIn = () => (otelIn ??= new (loadOtel().OpenTelemetryInboundInterceptor)());
  const tracedOut = () => (otelOut ??= new (loadOtel().OpenTelemetryOutboundInterceptor)());
  /** Set by `execute` from the start's headers: the run's own calls (activities, continue-as-new…) are traced. */
  let traced = false;

  const inbound: WorkflowInboundCallsInterceptor = {
    execute(input, next) {
      if (!carriesTrace(input.headers) || !TRACED_RUNS.has(workflowInfo().workflowType)) return next(input);
      traced = true;
      return tracedIn().execute(input, next);
    },
    handleSignal: (input, next) => (carriesTrace(input.headers) ? tracedIn().handleSignal(input, next) : next(input)),
    handleUpdate: (input, next) => (carriesTrace(input.headers) ? tracedIn().handleUpdate(input, next) : next(input)),
    validateUpdate: (input, next) => (carriesTrace(input.headers) ? tracedIn().validateUpdate(input, next) : next(input)),
    handleQuery: (input, next) => (carriesTrace(input.headers) ? tracedIn().handleQuery(input, next) : next(input)),
  };
  const outbound: WorkflowOutboundCallsInterceptor = {
    scheduleActivity: (input, next) => (traced ? tracedOut().scheduleActivity(input, next) : next(input)),
    scheduleLocalActivity: (input, next) => (traced ? tracedOut().scheduleLocalActivity(input, next) : next(input)),
    startChildWorkflowExecution: (input, next) => (traced ? tracedOut().startChildWorkflowExecution(input, next) : next(input)),
    continueAsNew: (input, next) => (traced ? tracedOut().continueAsNew(input, next) : next(input)),
    signalWorkflow: (input, next) => (traced ? tracedOut().signalWorkflow(input, next) : next(input)),
    startNexusOperation: (input, next) => (traced ? tracedOut().startNexusOperation(input, next) : next(input)),
    // Workflow log lines name the active span (trace_id, span_id) when there is one.
    getLogAttributes: (input, next) => (traced ? tracedOut().getLogAttributes(input, next) : next(input)),
  };
  // Releases the sandbox's span context store if a traced run made one; otherwise only `next`.
  const internals: WorkflowInternalsInterceptor = {
    dispose: (input, next) => void (otel ? new otel.OpenTelemetryInternalsInterceptor().dispose(input, next) : next(input)),
  };
  return { inbound: [inbound], outbound: [outbound], internals: [internals] };
};
