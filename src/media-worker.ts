// The media worker process (`npm run media-worker`): the relay activity on the `avatar-media` task
// queue. Scale it apart from the orchestration worker; each live relay holds one activity slot.
import { dispose } from '@livekit/rtc-node';
import { guardRtcHandleErrors } from './media/rtc-guard';
import { ConfigError, loadEnv, requireServiceConfig } from './config';
import { createLogger } from './log';
import { connectWorker, installRuntime } from './temporal';
import { createMediaWorker } from './workers';
import { runUntilSignal } from './process';
import { startTracing, tracingSettings } from './tracing';

async function main(): Promise<void> {
  const env = loadEnv();
  // The relay never calls Runway: it gets no Runway key (deploy/runway.env goes to the worker only).
  const config = requireServiceConfig(env, { runway: false });
  const log = createLogger({ level: env.LOG_LEVEL, name: 'media-worker' });
  installRuntime(log, env.MEDIA_METRICS_PORT ?? env.METRICS_PORT, env.METRICS_HOST);
  // rtc-node's invalid-handle error from a finalizer must not end every relay of the process.
  guardRtcHandleErrors((msg, fields) => log.warn(fields, msg));
  const tracing = await startTracing(tracingSettings(env), { serviceName: 'avatar-sessions-media-worker', log });
  const { connection, namespace } = await connectWorker(undefined, { log });
  const worker = await createMediaWorker({ connection, namespace, config, tracing });
  log.info({ taskQueue: 'avatar-media', namespace, tracing: tracing ? 'on' : 'off' }, 'media worker started');
  await runUntilSignal(worker, log, async () => {
    await connection.close();
    await tracing?.shutdown().catch((err: unknown) => log.warn({ err }, 'trace export at shutdown failed'));
    await dispose(); // rtc-node's native runtime keeps the process alive until disposed
  });
}

main().catch((err) => {
  // eslint-disable-next-line no-console -- the process failed before (or while) building its logger: stderr is all there is
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
});
