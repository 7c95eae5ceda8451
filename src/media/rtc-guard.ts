// Containment for one rtc-node failure that no caller can catch. rtc-node wraps every native object
// (room, participant, track, publication, stream, source) in a napi `FfiHandle` whose GC finalizer
// drops the native handle; when the native side has already dropped it (a second wrapper of the same
// id, a handle released with its room), the finalizer throws `trying to drop an invalid handle`
// (`code: 'GenericFailure'`) at garbage collection time: an uncaught exception that would end every
// room of the process (the media worker's relays, the simulator's avatars) for one leaked handle.
// The handle is gone either way and nothing references it any more, so the only right reaction is to
// log it and go on. Every other uncaught error keeps Node's default behaviour (print, exit 1) unless
// another listener (a test runner, the process's own handler) takes care of it.
//
// Our own code releases each handle once and in order (src/media/relay.ts, src/runway-sim/avatar.ts);
// this guard is for what rtc-node releases by itself.

/** rtc-node's error for a native handle dropped twice or after its owner is gone. */
export function isInvalidHandleError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  return err.message.includes('trying to drop an invalid handle') && (code === undefined || code === 'GenericFailure');
}

type Warn = (message: string, fields: Record<string, unknown>) => void;

let installed = false;
let count = 0;
let warn: Warn = (message, fields) => process.stderr.write(`${JSON.stringify({ level: 'warn', msg: message, ...fields })}\n`);

/** How many invalid-handle errors this process survived. */
export function invalidHandleErrors(): number {
  return count;
}

/**
 * Installs (once per process) the handler that survives rtc-node's invalid-handle errors, thrown from
 * a finalizer or as an unhandled rejection of a close(). `log` replaces the default JSON line on stderr.
 */
export function guardRtcHandleErrors(log?: Warn): void {
  if (log) warn = log;
  if (installed) return;
  installed = true;
  const onUncaught = (err: unknown, origin: string) => {
    if (isInvalidHandleError(err)) {
      count++;
      warn('rtc-node dropped a native handle that was already released; the process goes on', { origin, survived: count });
      return;
    }
    // Not ours. With no other listener Node would print it and exit: do the same.
    if (process.listenerCount('uncaughtException') > 1) return;
    process.stderr.write(
      `Uncaught ${origin === 'unhandledRejection' ? 'rejection' : 'exception'}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  };
  process.on('uncaughtException', onUncaught);
}
