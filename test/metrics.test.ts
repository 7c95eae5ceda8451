// Service metrics through the worker runtime's Prometheus endpoint: phases, end reasons, Runway API
// latency by endpoint. (The API's own /metrics is covered in api.test.ts.)
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DefaultLogger, Runtime, makeTelemetryFilterString } from '@temporalio/worker';
import { freePort } from '../src/dev/net';
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
      telemetryOptions: { logging: { forward: {}, filter: makeTelemetryFilterString({ core: 'ERROR' }) }, metrics: { prometheus: { bindAddress: `127.0.0.1:${port}` } } },
    });
    stack = await startSessionStack({ sim: { defaults: { provisioningMs: 100, avatarMedia: 'light' } } });
  });
  after(async () => {
    await stack?.stop();
  });

  it('exports session phases, end reasons and Runway API latency', async () => {
    const conversationId = uniqueId('metrics');
    await stack.sessions.startAndWaitLive({
      conversationId, avatar: { type: 'runway-preset', presetId: 'cooking-teacher' }, livekit: { roomName: `room-${conversationId}` }, mode: 'direct',
      timing: { readyDeadlineSeconds: 20, avatarJoinTimeoutSeconds: 8, monitorIntervalSeconds: 0.5, endCallGraceSeconds: 3 },
    });
    await stack.sessions.endSession(conversationId);
    await withTimeout(stack.env.client.workflow.getHandle(sessionWorkflowId(conversationId)).result(), 30_000, 'session to end');
    const text = await eventually('metrics exported', async () => {
      const t = await (await fetch(metricsUrl)).text();
      return /avatar_sessions_ended/.test(t) ? t : undefined;
    }, 20_000);
    assert.match(text, /avatar_sessions_ended\{[^}]*end_reason="ended_by_request"[^}]*\} 1/);
    assert.match(text, /avatar_session_phase_seconds_bucket\{[^}]*phase="waiting_ready"/);
    assert.match(text, /avatar_session_phase_entered\{[^}]*phase="live"/);
    assert.match(text, /avatar_runway_request_seconds_count\{[^}]*endpoint="create"/);
  });
});
