// Structured logging (pino) with secret redaction by field name and by value. A line logged while an
// OpenTelemetry span is active (tracing on, src/tracing.ts) carries its trace_id and span_id; with
// tracing off the check is OpenTelemetry's no-op API, which finds no span.
import { isSpanContextValid, trace } from '@opentelemetry/api';
import pino, { type Logger } from 'pino';
import { REDACTED, SECRET_FIELDS, redactString } from './redact';

const redactPaths = SECRET_FIELDS.flatMap((f) => [f, `*.${f}`, `*.*.${f}`]);

/** The active span's ids, for the log line (pino's mixin). A new object each time: pino merges the line's fields into it. */
export function traceFields(): { trace_id?: string; span_id?: string } {
  const ids = trace.getActiveSpan()?.spanContext();
  return ids && isSpanContextValid(ids) ? { trace_id: ids.traceId, span_id: ids.spanId } : {};
}

export function createLogger(opts: { level?: string; name?: string; destination?: pino.DestinationStream } = {}): Logger {
  return pino(
    {
      name: opts.name,
      level: opts.level ?? process.env.LOG_LEVEL ?? 'info',
      redact: { paths: redactPaths, censor: REDACTED },
      mixin: traceFields,
      hooks: {
        // Values that slipped into messages (an error text quoting a token) are scrubbed too.
        logMethod(args, method) {
          method.apply(this, args.map((a) => (typeof a === 'string' ? redactString(a) : a)) as Parameters<typeof method>);
        },
      },
      serializers: {
        err: (e: unknown) => {
          const s = pino.stdSerializers.err(e as Error);
          return { ...s, message: redactString(s.message ?? ''), stack: s.stack ? redactString(s.stack) : undefined };
        },
      },
    },
    opts.destination,
  );
}

export const log = createLogger();
