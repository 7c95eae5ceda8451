// A continued run (continue-as-new after a renewal) carries a live session: it must not check the input
// again against today's presets and limits. A deploy that drops a preset would otherwise fail every
// session live with it, before teardown (issue 14, item 8).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WorkflowFailedError } from '@temporalio/client';
import { SESSION_TASK_QUEUE, SESSION_WORKFLOW_TYPE, sessionWorkflowId } from '../workflows/shared';
import type { CarriedSession } from '../workflows/session/run';
import type { SessionInput, SessionState } from '../workflows/types';
import { startSessionStack, uniqueId, type SessionStack } from './helpers/session-stack';

describe('continued runs', () => {
  let stack: SessionStack;
  before(async () => {
    stack = await startSessionStack({ sim: { defaults: { provisioningMs: 100, avatarMedia: 'light' } } });
  });
  after(async () => {
    await stack?.stop();
  });

  function input(): SessionInput {
    const conversationId = uniqueId('carried');
    return {
      conversationId,
      // Not a preset this deploy knows (as if a deploy had removed it while the session was live).
      avatar: { type: 'runway-preset', presetId: 'retired-preset' },
      livekit: { roomName: `room-${conversationId}` },
      mode: 'direct',
      timing: { endCallGraceSeconds: 1 },
    };
  }

  it("a first run with input today's deploy refuses fails as invalid_input", async () => {
    const inp = input();
    const err = await stack.env.client.workflow
      .execute(SESSION_WORKFLOW_TYPE, { taskQueue: SESSION_TASK_QUEUE, workflowId: sessionWorkflowId(inp.conversationId), args: [inp] })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    assert.ok(err instanceof WorkflowFailedError, String(err));
    assert.equal((err.cause as { type?: string }).type, 'invalid_input');
  });

  it('a continued run with the same input goes on to its end and tears down', async () => {
    const inp = input();
    // The live Runway session it carries (made at the simulator as the first run would have).
    const runway = await fetch(`${stack.sim.baseUrl}/v1/realtime_sessions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.config.runway.apiKey}`, 'x-runway-version': '2024-11-06', 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gwm1_avatars', avatar: { type: 'runway-preset', presetId: 'cooking-teacher' } }),
    }).then((r) => r.json() as Promise<{ id: string }>);
    const state: SessionState = {
      conversationId: inp.conversationId,
      phase: 'live',
      requestedMode: 'direct',
      mode: 'direct',
      runwaySessionId: runway.id,
      runwaySessionIds: [runway.id],
      roomName: inp.livekit.roomName,
      avatarIdentity: `runway-avatar-${inp.conversationId}`,
      phaseTimes: {},
      ambiguousCreates: [],
      events: [],
      renewals: 1,
      billedSeconds: 0,
      billedSecondsComplete: true,
    };
    // Ended by request as it starts: the run goes straight from live to teardown.
    const carried: CarriedSession = {
      state,
      flags: [],
      slots: [],
      provisioningMs: [],
      endRequested: 'test',
      current: { id: runway.id, mode: 'direct', liveSince: Date.now() },
    };
    const result = (await stack.env.client.workflow.execute(SESSION_WORKFLOW_TYPE, {
      taskQueue: SESSION_TASK_QUEUE,
      workflowId: sessionWorkflowId(inp.conversationId),
      args: [inp, carried],
    })) as SessionState;
    assert.equal(result.phase, 'completed');
    assert.equal(result.endReason, 'ended_by_request');
    assert.ok(
      ['COMPLETED', 'CANCELLED'].includes(stack.sim.session(runway.id)!.status),
      `the carried Runway session ended (${stack.sim.session(runway.id)!.status})`,
    );
  });
});
