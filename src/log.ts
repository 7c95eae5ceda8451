// Structured logging (pino) with secret redaction by field name and by value.
import pino, { type Logger } from 'pino';
import { REDACTED, SECRET_FIELDS, redactString } from './redact';

const redactPaths = SECRET_FIELDS.flatMap((f) => [f, `*.${f}`, `*.*.${f}`]);

export function createLogger(opts: { level?: string; name?: string; destination?: pino.DestinationStream } = {}): Logger {
  return pino(
    {
      name: opts.name,
      level: opts.level ?? process.env.LOG_LEVEL ?? 'info',
      redact: { paths: redactPaths, censor: REDACTED },
      hooks: {
        // Values that slipped into messages (an error text quoting a token) are scrubbed too.
        logMethod(args, method) {
          method.apply(
            this,
            args.map((a) => (typeof a === 'string' ? redactString(a) : a)) as Parameters<typeof method>,
          );
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
