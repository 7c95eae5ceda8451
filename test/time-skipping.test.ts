// Minutes of workflow time in a second: Temporal's time-skipping test server jumps the clock while the
// workflow only waits on timers. Here Runway refuses every create with its concurrency limit (another
// client holds the account), so the session waits in `waiting_capacity`, backing off, until the
// 10-minute capacity deadline fails it with a clear error, and nothing is left behind.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { bundleWorkflowCode } from '@temporalio/worker';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { WorkflowFailedError } from '@temporalio/client';
import { SessionsClient } from '../src/client/sessions';
import { startRunwaySimulator, type RunwaySimulator } from '../src/runway-sim/server';
import { FAILURE_CONVERTER_PATH, encryptedDataConverter } from '../src/secrets/payload-codec';
import { createSessionWorker, type SessionWorker } from '../src/workers';
import { sessionWorkflowId } from '../workflows/shared';
import { TEST_SECRETS_KEY } from './helpers/keys';
import { startTimeSkippingTemporal } from './helpers/temporal';
import { withTimeout } from './helpers/wait';
import { startTestLiveKit, type LiveKitServer } from './helpers/livekit';

describe('time-dependent logic on the time-skipping server', () => {
  let env: TestWorkflowEnvironment;
  let sim: RunwaySimulator;
  let worker: SessionWorker;
  let running: Promise<void>;
  let lk: LiveKitServer;
  before(async () => {
    lk = await startTestLiveKit('time-skipping');
    env = await startTimeSkippingTemporal({ dataConverter: encryptedDataConverter([TEST_SECRETS_KEY]) });
    sim = await startRunwaySimulator({ account: { maxConcurrentSessions: 0 } });
    const bundle = await bundleWorkflowCode({
      workflowsPath: require.resolve('../workflows'),
      failureConverterPath: FAILURE_CONVERTER_PATH,
      logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} },
    });
    worker = await createSessionWorker({
      connection: env.nativeConnection,
      config: {
        runway: { apiKey: sim.apiKey, baseUrl: sim.baseUrl },
        livekit: { url: lk.url, publicUrl: lk.url, apiKey: lk.apiKey, apiSecret: lk.apiSecret },
        secretsKey: TEST_SECRETS_KEY,
      },
      workflowBundle: { code: bundle.code },
      admission: { sessionLimitOverride: 5, checkIntervalSeconds: 30 },
    });
    running = worker.run();
  });
  after(async () => {
    worker?.shutdown();
    await running;
    await sim?.stop();
    await env?.teardown();
    await lk?.stop();
  });

  it('a session refused by Runway for 10 minutes fails capacity_timeout, in seconds of real time', async () => {
    const sessions = new SessionsClient(env.client);
    const conversationId = `ts-${Date.now().toString(36)}`;
    const started = Date.now();
    await sessions.startSession({ conversationId, avatar: { type: 'runway-preset', presetId: 'influencer' }, livekit: { roomName: 'r' }, mode: 'direct' });
    const err = await withTimeout(
      env.client.workflow
        .getHandle(sessionWorkflowId(conversationId))
        .result()
        .then(
          () => undefined,
          (e: unknown) => e,
        ),
      120_000,
      'the capacity deadline',
    );
    assert.ok(err instanceof WorkflowFailedError);
    const state = await sessions.getSession(conversationId);
    assert.equal(state?.phase, 'failed');
    assert.equal(state?.error?.code, 'capacity_timeout');
    assert.match(state.error.message, /kept refusing new sessions for 600 s/);
    const refusals = sim.requests().filter((r) => r.endpoint === 'create').length;
    assert.ok(refusals >= 5 && refusals < 40, `backed off: ${refusals} creates in 10 workflow minutes`);
    assert.ok(Date.now() - started < 90_000, 'the clock was skipped');
    assert.deepEqual(sim.orphans(), []);
  });
});
