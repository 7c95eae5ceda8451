// Service metrics through the worker runtime's Prometheus endpoint: phases, end reasons, Runway API
// latency by endpoint. The API's running-session counts: cached, one refresh at a time. (The API's
// own metrics port is covered in api.test.ts.)
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DefaultLogger, Runtime, makeTelemetryFilterString } from '@temporalio/worker';
import { freePort } from '../src/dev/net';
import { ApiMetrics, RUNNING_PHASES, type PhaseCounter } from '../src/metrics';
import { sessionWorkflowId } from '../workflows/shared';
import { startSessionStack, uniqueId, type SessionStack } from './helpers/session-stack';
import { eventually, withTimeout } from './helpers/wait';

describe('worker metrics', () => {
  let stack: SessionStack;
  let metricsUrl: string;
  before(async () => {
    const port = await freePort();
    metricsUrl = `http://127.0.0.1:${port}/metrics`;
    // Installed before anything else in this process, so the stack's workers export through it.
    Runtime.install({
      logger: new DefaultLogger('ERROR'),
      telemetryOptions: {
        logging: { forward: {}, filter: makeTelemetryFilterString({ core: 'ERROR' }) },
        metrics: { prometheus: { bindAddress: `127.0.0.1:${port}` } },
      },
    });
    stack = await startSessionStack({ sim: { defaults: { provisioningMs: 100, avatarMedia: 'light' } } });
  });
  after(async () => {
    await stack?.stop();
  });

  it('exports session phases, end reasons and Runway API latency', async () => {
    const conversationId = uniqueId('metrics');
    await stack.sessions.startAndWaitLive({
      conversationId,
      avatar: { type: 'runway-preset', presetId: 'cooking-teacher' },
      livekit: { roomName: `room-${conversationId}` },
      mode: 'direct',
      timing: { readyDeadlineSeconds: 20, avatarJoinTimeoutSeconds: 8, monitorIntervalSeconds: 0.5, endCallGraceSeconds: 3 },
    });
    await stack.sessions.endSession(conversationId);
    await withTimeout(stack.env.client.workflow.getHandle(sessionWorkflowId(conversationId)).result(), 30_000, 'session to end');
    const text = await eventually(
      'metrics exported',
      async () => {
        const t = await (await fetch(metricsUrl)).text();
        return /avatar_sessions_ended/.test(t) ? t : undefined;
      },
      20_000,
    );
    assert.match(text, /avatar_sessions_ended\{[^}]*end_reason="ended_by_request"[^}]*\} 1/);
    assert.match(text, /avatar_session_phase_seconds_bucket\{[^}]*phase="waiting_ready"/);
    assert.match(text, /avatar_session_phase_entered\{[^}]*phase="live"/);
    assert.match(text, /avatar_runway_request_seconds_count\{[^}]*endpoint="create"/);
  });
});

describe('API metrics: running sessions by phase', () => {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const value = (text: string, series: string) =>
    Number(
      text
        .split('\n')
        .find((l) => l.startsWith(`${series} `))
        ?.slice(series.length + 1),
    );

  it('cost one set of visibility COUNT queries per period, however many scrape at once or in a row', async () => {
    let calls = 0;
    let live = 3;
    const countPhase: PhaseCounter = async (phase) => {
      calls++;
      await sleep(50); // a visibility query takes a while: concurrent scrapes must share it
      return phase === 'live' ? live : 0;
    };
    const metrics = new ApiMetrics({ countPhase, countCacheMs: 300 });
    const texts = await Promise.all(Array.from({ length: 10 }, () => metrics.registry.metrics()));
    for (let i = 0; i < 10; i++) texts.push(await metrics.registry.metrics());
    assert.equal(calls, RUNNING_PHASES.length, `${calls} queries for 20 scrapes`);
    assert.ok(texts.every((t) => value(t, 'avatar_sessions_running{phase="live"}') === 3));
    live = 5;
    await sleep(350);
    assert.equal(value(await metrics.registry.metrics(), 'avatar_sessions_running{phase="live"}'), 5, 'refreshed after the period');
    assert.equal(calls, 2 * RUNNING_PHASES.length);
  });

  it('a failed refresh keeps the last counts, counts the error once, and is not retried before the next period', async () => {
    let calls = 0;
    let fail = false;
    const metrics = new ApiMetrics({
      countPhase: async () => {
        calls++;
        if (fail) throw new Error('visibility down');
        return 2;
      },
      countCacheMs: 300,
    });
    await metrics.registry.metrics();
    fail = true;
    await sleep(350);
    let text = '';
    for (let i = 0; i < 10; i++) text = await metrics.registry.metrics();
    assert.equal(calls, 2 * RUNNING_PHASES.length, 'one failed refresh, not one per scrape');
    assert.equal(value(text, 'avatar_sessions_running{phase="live"}'), 2, 'the last good counts');
    assert.equal(value(text, 'avatar_sessions_visibility_errors_total'), 1);
  });
});
