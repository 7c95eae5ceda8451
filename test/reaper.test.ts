// The reaper on its Schedule: Runway sessions whose create answer was lost are found and cancelled.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ensureReaperSchedule, REAPER_SCHEDULE_ID } from '../src/reaper-schedule';
import { sessionWorkflowId } from '../workflows/shared';
import type { SessionInput } from '../workflows/types';
import { startSessionStack, uniqueId, type SessionStack } from './helpers/session-stack';
import { eventually } from './helpers/wait';

describe('reaper schedule', () => {
  let stack: SessionStack;
  before(async () => {
    stack = await startSessionStack({ sim: { defaults: { provisioningMs: 100, avatarMedia: 'light' } } });
  });
  after(async () => {
    await stack?.stop();
  });

  it('is created once, and a triggered run cancels the sessions of lost create answers', async () => {
    assert.equal(await ensureReaperSchedule(stack.env.client, { everySeconds: 3600, graceSeconds: 0 }), true);
    assert.equal(await ensureReaperSchedule(stack.env.client, { everySeconds: 3600, graceSeconds: 0 }), false, 'idempotent');

    // Every create answer is lost: the workflow records each ambiguous create and gives up.
    // (Their avatars stay out of the room: only the reaper can end these sessions.)
    stack.sim.configure({ faults: { create: { loseAnswerRate: 1 } }, defaults: { joinCustomerRoom: false } });
    const conversationId = uniqueId('lost');
    const inp: SessionInput = {
      conversationId,
      avatar: { type: 'runway-preset', presetId: 'influencer' },
      livekit: { roomName: `room-${conversationId}` },
      mode: 'direct',
      timing: { maxCreateAttempts: 2, readyDeadlineSeconds: 10 },
    };
    await stack.sessions.startSession(inp);
    await assert.rejects(stack.env.client.workflow.getHandle(sessionWorkflowId(conversationId)).result());
    stack.sim.configure({ faults: {}, defaults: { joinCustomerRoom: true } });
    const state = await stack.sessions.getSession(conversationId);
    assert.equal(state?.error?.code, 'create_attempts_exhausted');
    assert.equal(state?.ambiguousCreates.length, 2);
    const leaked = stack.sim.orphans();
    assert.equal(leaked.length, 2, 'two Runway sessions exist that the workflow never learned about');

    const schedule = stack.env.client.schedule.getHandle(REAPER_SCHEDULE_ID);
    await schedule.trigger();
    await eventually('the reaper cancelled the lost sessions', () => (stack.sim.orphans().length === 0 ? true : undefined), 30_000);
    for (const s of leaked) assert.equal(stack.sim.session(s.id)?.status, 'CANCELLED');
    const desc = await schedule.describe();
    assert.ok(desc.info.recentActions.length >= 1, 'the schedule ran');
    assert.deepEqual(stack.sim.invariantViolations(), []);
  });
});
