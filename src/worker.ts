// The orchestration worker process (`npm run worker`): workflows and Runway/room activities on the
// `avatar-sessions` task queue. Config comes from the environment and is checked before anything starts.
import { ConfigError, codecKeys, codecOptions, loadEnv, requireServiceConfig } from './config';
import { REAPER_SCHEDULE_ID, ensureReaperSchedule } from './reaper-schedule';
import { encryptedDataConverter } from './secrets/payload-codec';
import { createLogger } from './log';
import { connectClient, connectWorker, installRuntime } from './temporal';
import { createSessionWorker } from './workers';
import { runUntilSignal } from './process';

async function main(): Promise<void> {
  const env = loadEnv();
  const config = requireServiceConfig(env);
  const log = createLogger({ level: env.LOG_LEVEL, name: 'session-worker' });
  installRuntime(log, env.METRICS_PORT);
  const { connection, namespace } = await connectWorker();
  const worker = await createSessionWorker({
    connection,
    namespace,
    config,
    admission: { sessionLimitOverride: env.RUNWAY_SESSION_LIMIT },
    tuning: {
      maxConcurrentActivities: env.WORKER_MAX_CONCURRENT_ACTIVITIES,
      maxConcurrentWorkflowTasks: env.WORKER_MAX_CONCURRENT_WORKFLOW_TASKS,
      maxCachedWorkflows: env.WORKER_MAX_CACHED_WORKFLOWS,
    },
    poll: env.RUNWAY_POLL_INITIAL_MS || env.RUNWAY_POLL_MAX_MS ? { initialMs: env.RUNWAY_POLL_INITIAL_MS ?? 250, maxMs: env.RUNWAY_POLL_MAX_MS ?? 2000 } : undefined,
  });
  if (env.REAPER_INTERVAL_SECONDS > 0) {
    const client = await connectClient(undefined, encryptedDataConverter(codecKeys(config), codecOptions(config)));
    const created = await ensureReaperSchedule(client, { everySeconds: env.REAPER_INTERVAL_SECONDS });
    log.info({ scheduleId: REAPER_SCHEDULE_ID, created }, 'reaper schedule in place');
    await client.connection.close();
  }
  log.info({ taskQueue: 'avatar-sessions', namespace }, 'session worker started');
  await runUntilSignal(worker, log);
  await connection.close();
}

main().catch((err) => {
  // eslint-disable-next-line no-console
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
});
