// A worker process started before Temporal can be reached waits for it (a deploy that starts workers
// first, a cluster restarting) instead of exiting: it logs each miss and polls once Temporal is up.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { freePort } from '../src/dev/net';
import { spawnServiceProcess } from '../src/dev/service-process';
import { startTemporalDevServer } from '../src/dev/temporal-server';
import { withTimeout } from './helpers/wait';
import { reapChildrenOnExit } from '../src/dev/child';

reapChildrenOnExit();

describe('worker start-up', () => {
  it('waits for an unreachable Temporal, then polls once it is up', async () => {
    const dir = path.resolve(__dirname, '..', 'test-artifacts', 'logs');
    mkdirSync(dir, { recursive: true });
    const logFile = path.join(dir, `worker-waits-${process.pid}.log`);
    const port = await freePort();
    const worker = spawnServiceProcess(
      'worker',
      {
        ...process.env,
        TEMPORAL_ADDRESS: `127.0.0.1:${port}`,
        RUNWAYML_API_SECRET: `key_${randomBytes(16).toString('hex')}`,
        RUNWAYML_BASE_URL: 'http://127.0.0.1:9',
        LIVEKIT_URL: 'ws://127.0.0.1:9',
        LIVEKIT_API_KEY: 'k',
        LIVEKIT_API_SECRET: randomBytes(24).toString('hex'),
        SESSION_SECRETS_KEY: randomBytes(32).toString('base64'),
        REAPER_INTERVAL_SECONDS: '0',
        METRICS_PORT: '0',
        LOG_LEVEL: 'info',
      },
      logFile,
    );
    let server: Awaited<ReturnType<typeof startTemporalDevServer>> | undefined;
    try {
      // Temporal is not there: the worker keeps trying and says so.
      await withTimeout(
        (async () => {
          // (The log file appears once the process writes to it.)
          while (!(existsSync(logFile) && /not reachable yet/.test(readFileSync(logFile, 'utf8')))) await new Promise((r) => setTimeout(r, 200));
        })(),
        60_000,
        'the worker to report Temporal unreachable',
      );
      assert.equal(worker.child.exitCode, null, 'the worker is still running');
      server = await startTemporalDevServer({ port, logFile: path.join(dir, `worker-waits-temporal-${process.pid}.log`) });
      await withTimeout(worker.started, 90_000, 'the worker to poll once Temporal is up');
    } finally {
      worker.child.kill('SIGKILL');
      await worker.exited;
      await server?.stop();
    }
  });
});
