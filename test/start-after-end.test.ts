// A start for a conversation whose session already ended does not bring the avatar back into a room the
// user may have left (a retried request, a late duplicate): the API answers 409 with the previous
// outcome, the typed client throws SessionEndedError, the CLI exits 5; `restart` starts a new session.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startApiServer } from '../src/api/server';
import { SessionEndedError } from '../src/client/sessions';
import { createLogger } from '../src/log';
import { sessionWorkflowId } from '../workflows/shared';
import type { SessionInput } from '../workflows/types';
import { startSessionStack, uniqueId, type SessionStack } from './helpers/session-stack';

const token = 't'.repeat(32);
const timing = { readyDeadlineSeconds: 20, avatarJoinTimeoutSeconds: 8, monitorIntervalSeconds: 5, endCallGraceSeconds: 3, heartbeatTimeoutSeconds: 5 };

describe('a start after the end', () => {
  let stack: SessionStack;
  let api: Awaited<ReturnType<typeof startApiServer>>;
  before(async () => {
    stack = await startSessionStack({ sim: { defaults: { provisioningMs: 100, avatarMedia: 'light' } } });
    api = await startApiServer({
      config: { apiToken: token, apiPort: 0, livekit: stack.config.livekit },
      sessions: stack.sessions,
      log: createLogger({ level: 'silent' }),
      port: 0,
      allowTimingOverrides: true,
    });
  });
  after(async () => {
    await api?.close();
    await stack?.stop();
  });

  function input(): SessionInput {
    const conversationId = uniqueId('again');
    return {
      conversationId,
      avatar: { type: 'runway-preset', presetId: 'cooking-teacher' },
      livekit: { roomName: `room-${conversationId}` },
      mode: 'direct',
      timing,
    };
  }
  const post = (body: unknown) =>
    fetch(`${api.url}/v1/sessions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const runwaySessionsOf = (inp: SessionInput) => stack.sim.sessions().filter((s) => JSON.stringify(s.body).includes(inp.livekit.roomName)).length;

  it('the API answers 409 with the previous outcome and creates nothing; restart: true starts a new session', async () => {
    const inp = input();
    assert.equal((await post(inp)).status, 201);
    await stack.sessions.waitLive(inp.conversationId);
    await stack.sessions.endSession(inp.conversationId);
    await stack.env.client.workflow.getHandle(sessionWorkflowId(inp.conversationId)).result();
    const before = runwaySessionsOf(inp);

    const again = await post(inp);
    assert.equal(again.status, 409);
    const body = (await again.json()) as { error: { code: string; message: string }; previous: { phase?: string; endReason?: string } };
    assert.equal(body.error.code, 'session_ended');
    assert.match(body.error.message, /restart: true/);
    assert.equal(body.previous.phase, 'completed');
    assert.equal(body.previous.endReason, 'ended_by_request');
    assert.equal(runwaySessionsOf(inp), before, 'no Runway session was created');

    assert.equal((await post({ ...inp, restart: 'yes' })).status, 400, 'restart must be a boolean');
    const restarted = await post({ ...inp, restart: true });
    assert.equal(restarted.status, 201);
    await stack.sessions.waitLive(inp.conversationId);
    assert.equal(runwaySessionsOf(inp), before + 1);
    await stack.sessions.endSession(inp.conversationId);
    await stack.env.client.workflow.getHandle(sessionWorkflowId(inp.conversationId)).result();
  });

  it('the typed client throws SessionEndedError, for start and for start-and-wait, unless restart', async () => {
    const inp = input();
    await stack.sessions.startAndWaitLive(inp);
    await stack.sessions.endSession(inp.conversationId);
    await stack.env.client.workflow.getHandle(sessionWorkflowId(inp.conversationId)).result();
    await assert.rejects(stack.sessions.startSession(inp), (err: unknown) => err instanceof SessionEndedError && err.previous.endReason === 'ended_by_request');
    await assert.rejects(stack.sessions.startAndWaitLive(inp), (err: unknown) => err instanceof SessionEndedError);
    const { live } = await stack.sessions.startAndWaitLive(inp, { restart: true });
    assert.equal(live.mode, 'direct');
    await stack.sessions.endSession(inp.conversationId);
    await stack.env.client.workflow.getHandle(sessionWorkflowId(inp.conversationId)).result();
  });
});
