// The orchestration worker process (`npm run worker`): workflows and Runway/room activities on the
// `avatar-sessions` task queue. Config comes from the environment and is checked before anything starts.
import { ConfigError, codecKeys, codecOptions, loadEnv, requireServiceConfig } from './config';
import { REAPER_SCHEDULE_ID, ensureReaperSchedule } from './reaper-schedule';
import { encryptedDataConverter } from './secrets/payload-codec';
import { createLogger } from './log';
import { connectClient, connectWorker, installRuntime } from './temporal';
import { createSessionWorker, workerSettings } from './workers';
import { runUntilSignal } from './process';
import { startTracing, tracingSettings } from './tracing';

async function main(): Promise<void> {
  const env = loadEnv();
  const config = requireServiceConfig(env);
  const log = createLogger({ level: env.LOG_LEVEL, name: 'session-worker' });
  installRuntime(log, env.METRICS_PORT, env.METRICS_HOST);
  const tracing = await startTracing(tracingSettings(env), { serviceName: 'avatar-sessions-worker', log });
  const { connection, namespace } = await connectWorker(undefined, { log });
  const worker = await createSessionWorker({
    connection,
    namespace,
    config,
    tracing,
    ...workerSettings(env),
  });
  if (env.REAPER_INTERVAL_SECONDS > 0) {
    const client = await connectClient(undefined, encryptedDataConverter(codecKeys(config), codecOptions(config)));
    const created = await ensureReaperSchedule(client, { everySeconds: env.REAPER_INTERVAL_SECONDS });
    log.info({ scheduleId: REAPER_SCHEDULE_ID, created }, 'reaper schedule in place');
    await client.connection.close();
  }
  log.info({ taskQueue: 'avatar-sessions', namespace, tracing: tracing ? 'on' : 'off' }, 'session worker started');
  await runUntilSignal(worker, log);
  await connection.close();
  await tracing?.shutdown().catch((err: unknown) => log.warn({ err }, 'trace export at shutdown failed'));
}

main().catch((err) => {
  // eslint-disable-next-line no-console -- the process failed before (or while) building its logger: stderr is all there is
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
});
