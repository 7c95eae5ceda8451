// The session workflow end to end: real Temporal dev server, real LiveKit servers, the Runway
// simulator over HTTP. Every test ends by checking the simulator's ledger: no orphaned Runway
// session, no contract violation.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WorkflowFailedError } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { ADMISSION_WORKFLOW_ID, admissionStateQuery, sessionWorkflowId } from '../workflows/shared';
import type { SessionInput, SessionState } from '../workflows/types';
import { participantsIn, startSessionStack, uniqueId, type SessionStack } from './helpers/session-stack';
import { eventually, withTimeout } from './helpers/wait';
import { recordHistory } from './helpers/histories';

const fastTiming = { readyDeadlineSeconds: 20, avatarJoinTimeoutSeconds: 8, monitorIntervalSeconds: 0.5, endCallGraceSeconds: 3, heartbeatTimeoutSeconds: 5 };

let lastConversation: string | undefined;
function input(over: Partial<SessionInput> = {}): SessionInput {
  const conversationId = uniqueId('conv');
  lastConversation = conversationId;
  return {
    conversationId,
    avatar: { type: 'runway-preset', presetId: 'cooking-teacher' },
    livekit: { roomName: `room-${conversationId}` },
    mode: 'direct',
    timing: fastTiming,
    ...over,
  };
}

async function finalState(stack: SessionStack, conversationId: string): Promise<{ state: SessionState; failed?: WorkflowFailedError }> {
  const handle = stack.env.client.workflow.getHandle(sessionWorkflowId(conversationId));
  try {
    await withTimeout(handle.result(), 60_000, `session ${conversationId} to finish`).catch(async (err) => {
      if (!/timed out after/.test(String(err))) throw err;
      const d = await handle.describe();
      const s = await stack.sessions.getSession(conversationId).catch((e) => console.error('query failed', e));
      const h = await handle.fetchHistory();
      for (const e of h.events?.slice(-8) ?? [])
        console.error(String(e.eventType), JSON.stringify(e.workflowTaskFailedEventAttributes?.failure?.message ?? ''));
      throw new Error(
        `${String(err)}; status ${d.status.name}, phase ${s?.phase}, pending activities ${JSON.stringify(d.raw.pendingActivities?.map((a) => a.activityType?.name))}, events ${JSON.stringify(s?.events?.slice(-5))}`,
      );
    });
  } catch (err) {
    if (!(err instanceof WorkflowFailedError)) throw err;
    return { state: (await stack.sessions.getSession(conversationId))!, failed: err };
  }
  return { state: (await stack.sessions.getSession(conversationId))! };
}

async function waitPhase(stack: SessionStack, conversationId: string, phase: string, timeoutMs = 20_000): Promise<SessionState> {
  return eventually(
    `phase ${phase}`,
    async () => {
      const s = await stack.sessions.getSession(conversationId);
      return s?.phase === phase ? s : undefined;
    },
    timeoutMs,
  );
}

describe('avatarSession workflow', () => {
  let stack: SessionStack;
  before(async () => {
    stack = await startSessionStack({ sim: { defaults: { provisioningMs: 100, avatarMedia: 'light' } } });
  });
  after(async () => {
    await stack?.stop();
  });
  afterEach(async (t) => {
    // Finished runs feed the replay test (RECORD_HISTORIES=1 rewrites test/histories).
    if (lastConversation)
      await recordHistory(stack.env.client, sessionWorkflowId(lastConversation), `session-${t.name}`).catch((err) => {
        if (!/NOT_FOUND/.test(String(err))) throw err; // bad input never started a workflow
      });
    lastConversation = undefined;
    // The ledger's verdict after every test: nothing left running at Runway, no contract violation.
    await eventually('no orphaned Runway sessions', () => (stack.sim.orphans().length === 0 ? true : undefined), 15_000);
    assert.deepEqual(stack.sim.invariantViolations(), []);
    stack.sim.configure({ faults: {} });
  });

  it('direct: goes live with the avatar publishing in the customer room, then ends cleanly on request', async () => {
    const inp = input();
    const { live } = await stack.sessions.startAndWaitLive(inp);
    assert.equal(live.mode, 'direct');
    assert.equal(live.roomName, inp.livekit.roomName);
    // Live only once the avatar is in the room with video.
    const ids = await participantsIn(stack.customer, inp.livekit.roomName);
    assert.ok(ids.includes(live.avatarIdentity), `avatar ${live.avatarIdentity} in ${ids.join(',')}`);
    const state = await stack.sessions.getSession(inp.conversationId);
    assert.equal(state?.phase, 'live');
    assert.ok(state?.phaseTimes.waiting_ready && state.phaseTimes.bridging && state.phaseTimes.live);

    assert.equal(await stack.sessions.endSession(inp.conversationId), true);
    assert.equal(await stack.sessions.endSession(inp.conversationId), true, 'end is idempotent');
    const { state: done, failed } = await finalState(stack, inp.conversationId);
    assert.equal(failed, undefined);
    assert.equal(done.phase, 'completed');
    assert.equal(done.endReason, 'ended_by_request');
    // END_CALL first: Runway records a clean COMPLETED session rather than a cancelled one.
    assert.equal(stack.sim.session(live.runwaySessionId)?.status, 'COMPLETED');
    assert.deepEqual(await participantsIn(stack.customer, inp.livekit.roomName), []);
  });

  it("capacity free: the slot comes in the admission request's own answer, and the create goes out in the first workflow task", async () => {
    // A controller that has asked for its limit hint (a fresh one waits for it before granting).
    const warm = input();
    await stack.sessions.startAndWaitLive(warm);
    await stack.sessions.endSession(warm.conversationId);
    await finalState(stack, warm.conversationId);
    const inp = input();
    await stack.sessions.startAndWaitLive(inp);
    await stack.sessions.endSession(inp.conversationId);
    await finalState(stack, inp.conversationId);
    const { events } = await stack.env.client.workflow.getHandle(sessionWorkflowId(inp.conversationId)).fetchHistory();
    const signals = (events ?? []).flatMap((e) => (e.workflowExecutionSignaledEventAttributes ? [e.workflowExecutionSignaledEventAttributes.signalName] : []));
    assert.ok(!signals.includes('slotGranted'), `no slotGranted signal (signals: ${signals.join(', ')})`);
    const firstCompleted = (events ?? []).findIndex((e) => e.workflowTaskCompletedEventAttributes);
    const createScheduled = (events ?? []).findIndex((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'createRunwaySession');
    const secondTask = (events ?? []).findIndex((e, i) => i > firstCompleted && e.workflowTaskScheduledEventAttributes);
    assert.ok(createScheduled > firstCompleted && (secondTask < 0 || createScheduled < secondTask), 'the create is scheduled by the first workflow task');
  });

  it('a second start for a running conversation returns the running session, never a second Runway session', async () => {
    const inp = input();
    const first = await stack.sessions.startSession(inp);
    const second = await stack.sessions.startSession(inp);
    assert.equal(first.started, true);
    assert.equal(second.started, false);
    assert.equal(second.runId, first.runId);
    await stack.sessions.waitLive(inp.conversationId);
    const created = stack.sim.sessions().filter((s) => JSON.stringify(s.body).includes(inp.livekit.roomName));
    assert.equal(created.length, 1);
    await stack.sessions.endSession(inp.conversationId);
    await finalState(stack, inp.conversationId);
  });

  for (const phase of ['creating', 'waiting_ready', 'bridging', 'live'] as const) {
    it(`end during ${phase} finishes completed/ended_by_request and leaves nothing behind`, async () => {
      const inp = input();
      if (phase === 'waiting_ready') stack.sim.nextSessions([{ provisioningMs: 60_000 }]);
      if (phase === 'bridging') stack.sim.nextSessions([{ joinCustomerRoom: false }]);
      if (phase === 'creating') stack.sim.configure({ faults: { create: { latencyMs: 1500 } } });
      await stack.sessions.startSession(inp);
      await waitPhase(stack, inp.conversationId, phase);
      await stack.sessions.endSession(inp.conversationId);
      const { state, failed } = await finalState(stack, inp.conversationId);
      assert.equal(failed, undefined);
      assert.equal(state.phase, 'completed');
      assert.equal(state.endReason, 'ended_by_request');
      for (const id of state.runwaySessionIds) assert.ok(['COMPLETED', 'CANCELLED'].includes(stack.sim.session(id)!.status), `session ${id} ended`);
    });
  }

  it('teardown keeps trying when Runway refuses the cancel for a while (401 during a key rotation), and skips no step', async () => {
    const inp = input();
    stack.sim.nextSessions([{ provisioningMs: 60_000 }]);
    await stack.sessions.startSession(inp);
    await waitPhase(stack, inp.conversationId, 'waiting_ready');
    stack.sim.configure({ faults: { cancel: { clientError: { status: 401, rate: 1 } } } });
    await stack.sessions.endSession(inp.conversationId);
    await eventually(
      'the cancel refused twice',
      () => (stack.sim.requests().filter((r) => r.endpoint === 'cancel' && r.status === 401).length >= 2 ? true : undefined),
      30_000,
    );
    stack.sim.configure({ faults: {} });
    const { state, failed } = await finalState(stack, inp.conversationId);
    assert.equal(failed, undefined, 'the refusal did not escape teardown');
    assert.equal(state.phase, 'completed');
    assert.equal(state.endReason, 'ended_by_request');
    assert.equal(stack.sim.session(state.runwaySessionIds[0]!)?.status, 'CANCELLED');
    const admission = await stack.env.client.workflow.getHandle(ADMISSION_WORKFLOW_ID).query(admissionStateQuery);
    assert.ok(!admission.holders.some((h) => h.holder === sessionWorkflowId(inp.conversationId)), 'its slot was released');
  });

  it("FAILED during provisioning fails the session with Runway's failureCode", async () => {
    const inp = input();
    stack.sim.nextSessions([{ provisioningMs: 5000, failAfterMs: 200, failureCode: 'INTERNAL.GPU_UNAVAILABLE' }]);
    await stack.sessions.startSession(inp);
    const { state, failed } = await finalState(stack, inp.conversationId);
    assert.ok(failed);
    assert.equal(state.phase, 'failed');
    assert.equal(state.endReason, 'failed');
    assert.equal(state.error?.code, 'session_failed');
    assert.match(state.error.message, /INTERNAL\.GPU_UNAVAILABLE/);
  });

  it('rides out 5xx and 429 storms on every endpoint', async () => {
    stack.sim.configure({ faults: { '*': { status5xxRate: 0.3, status429Rate: 0.3, retryAfterMs: 200 } } });
    const inp = input();
    const { live } = await stack.sessions.startAndWaitLive(inp);
    stack.sim.configure({ faults: {} });
    assert.equal(live.mode, 'direct');
    await stack.sessions.endSession(inp.conversationId);
    const { state } = await finalState(stack, inp.conversationId);
    assert.equal(state.phase, 'completed');
    const injected = stack.sim.requests().filter((r) => r.faultInjected).length;
    assert.ok(injected > 0, 'faults were injected');
  });

  it('a create answered 5xx after it reached Runway is recorded for the reaper, then retried', async () => {
    stack.sim.configure({ faults: { create: { status5xxRate: 1 } } });
    const inp = input();
    await stack.sessions.startSession(inp);
    await eventually(
      'a create answered 5xx',
      async () => ((await stack.sessions.getSession(inp.conversationId))?.events.some((e) => e.type === 'create_retry') ? true : undefined),
      20_000,
      100,
    );
    stack.sim.configure({ faults: {} });
    await stack.sessions.waitLive(inp.conversationId);
    const state = await stack.sessions.getSession(inp.conversationId);
    assert.ok(state!.ambiguousCreates.length >= 1, 'the 5xx create is on record for the reaper');
    assert.ok(
      state!.events.some((e) => e.type === 'ambiguous_create' && /answered 50\d/.test(e.message)),
      JSON.stringify(state!.events),
    );
    await stack.sessions.endSession(inp.conversationId);
    assert.equal((await finalState(stack, inp.conversationId)).state.phase, 'completed');
  });

  it('direct: the avatar never joins → fails with what is missing, and the Runway session is cancelled', async () => {
    const inp = input({ timing: { ...fastTiming, avatarJoinTimeoutSeconds: 2 } });
    stack.sim.nextSessions([{ joinCustomerRoom: false }]);
    await stack.sessions.startSession(inp);
    const { state } = await finalState(stack, inp.conversationId);
    assert.equal(state.phase, 'failed');
    assert.equal(state.error?.code, 'avatar_not_joined');
    assert.match(state.error.message, /never joined/);
    assert.equal(stack.sim.session(state.runwaySessionIds[0]!)?.status, 'CANCELLED');
  });

  it("direct: integration rejected by the account fails with Runway's message", async () => {
    stack.sim.setAccount({ livekitIntegration: false });
    try {
      const inp = input();
      await stack.sessions.startSession(inp);
      const { state } = await finalState(stack, inp.conversationId);
      assert.equal(state.phase, 'failed');
      assert.equal(state.error?.code, 'integration_unsupported');
      assert.match(state.error.message, /Unrecognized key: integration/);
      assert.deepEqual(state.runwaySessionIds, []);
    } finally {
      stack.sim.setAccount({ livekitIntegration: true });
    }
  });

  it('maxDuration ends a live session with end reason max_duration', async () => {
    const inp = input({ maxDurationSeconds: 2 });
    await stack.sessions.startAndWaitLive(inp);
    const { state } = await finalState(stack, inp.conversationId);
    assert.equal(state.phase, 'completed');
    assert.equal(state.endReason, 'max_duration');
  });

  it('Runway ending the session while live ends the workflow with runway_ended', async () => {
    const inp = input();
    stack.sim.nextSessions([{ runtimeCapSeconds: 1.5 }]);
    await stack.sessions.startAndWaitLive(inp);
    const { state } = await finalState(stack, inp.conversationId);
    assert.equal(state.phase, 'completed');
    assert.equal(state.endReason, 'runway_ended');
  });

  it('workflow cancellation still tears down: the Runway session ends and the workflow reports cancelled', async () => {
    const inp = input();
    await stack.sessions.startAndWaitLive(inp);
    const handle = stack.env.client.workflow.getHandle(sessionWorkflowId(inp.conversationId));
    await handle.cancel();
    const { state, failed } = await finalState(stack, inp.conversationId);
    assert.ok(failed, 'a cancelled workflow reports as cancelled');
    assert.equal(state.endReason, 'cancelled');
    assert.equal(state.phase, 'completed');
    assert.ok(['COMPLETED', 'CANCELLED'].includes(stack.sim.session(state.runwaySessionIds[0]!)!.status));
  });

  it('relay: a READY session that expired before consume is cancelled and replaced', async () => {
    const inp = input({ mode: 'relay' });
    stack.sim.nextSessions([{ readyTtlMs: 1 }]);
    const { live } = await stack.sessions.startAndWaitLive(inp);
    const state = await stack.sessions.getSession(inp.conversationId);
    assert.equal(state?.runwaySessionIds.length, 2, 'a second Runway session replaced the expired one');
    const [expired] = state.runwaySessionIds;
    assert.ok(['FAILED', 'CANCELLED'].includes(stack.sim.session(expired!)!.status));
    assert.equal(live.runwaySessionId, state.runwaySessionIds[1]);
    assert.ok(state?.events.some((e) => e.type === 'consume_failed' || e.type === 'ready_expired'));
    await stack.sessions.endSession(inp.conversationId);
    const { state: done } = await finalState(stack, inp.conversationId);
    assert.equal(done.phase, 'completed');
  });

  it('a lost create answer is recorded, the session goes live on a new create, and the reaper ends the lost one', async () => {
    const inp = input();
    // The lost session's avatar stays out of the room, so only the reaper can end it.
    stack.sim.nextSessions([{ loseAnswer: true, joinCustomerRoom: false }]);
    await stack.sessions.startSession(inp);
    const live = await stack.sessions.waitLive(inp.conversationId);
    assert.equal((await stack.sessions.getSession(inp.conversationId))?.ambiguousCreates.length, 1);
    const lost = stack.sim.sessions().filter((s) => JSON.stringify(s.body).includes(inp.livekit.roomName) && s.id !== live.runwaySessionId);
    assert.ok(lost.length >= 1, 'the lost answer left a session only Runway knows about');
    await stack.sessions.endSession(inp.conversationId);
    await finalState(stack, inp.conversationId);
    const stillRunning = lost.filter((l) => !['COMPLETED', 'CANCELLED', 'FAILED'].includes(stack.sim.session(l.id)!.status));
    const report = (await stack.env.client.workflow.execute('reconcileRunwaySessions', {
      taskQueue: 'avatar-sessions',
      workflowId: uniqueId('reaper'),
      args: [{ graceSeconds: 0 }],
    })) as { reaped: { runwaySessionId: string; reason: string }[] };
    assert.ok(stillRunning.length >= 1, 'a lost session was still running at Runway');
    for (const l of stillRunning)
      assert.ok(
        report.reaped.some((r) => r.runwaySessionId === l.id && r.reason === 'ambiguous_create'),
        `reaped ${l.id}`,
      );
    for (const l of lost) assert.ok(['COMPLETED', 'CANCELLED'].includes(stack.sim.session(l.id)!.status), `lost session ${l.id} ended`);
    lastConversation = undefined;
  });

  it('history holds no plaintext secret: customer text, tokens, keys are all encrypted', async () => {
    const marker = `persona-${Date.now().toString(36)}-do-not-leak`;
    const inp = input({ personality: `You are ${marker}`, startScript: `Hello from ${marker}` });
    await stack.sessions.startAndWaitLive(inp);
    // A failure message that quotes customer text is encrypted too.
    await stack.sessions.endSession(inp.conversationId);
    await finalState(stack, inp.conversationId);
    const history = await stack.env.client.workflow.getHandle(sessionWorkflowId(inp.conversationId)).fetchHistory();
    const raw = Buffer.from(temporal.api.history.v1.History.encode(history).finish());
    for (const [what, secret] of [
      ['customer text', marker],
      ['Runway API key', stack.config.runway.apiKey],
      ['LiveKit API secret', stack.config.livekit.apiSecret],
      ['a LiveKit token (JWT)', 'eyJhbGciOi'],
      ['the session key', '"sessionKey"'],
    ] as const) {
      assert.ok(!raw.includes(Buffer.from(secret)), `${what} appears in plaintext in history`);
    }
    // And yet the client, holding the key, reads everything back.
    const state = await stack.sessions.getSession(inp.conversationId);
    assert.equal(state?.phase, 'completed');
    assert.ok(raw.includes(Buffer.from('binary/encrypted')));
  });

  it('rejects bad input before anything reaches Runway', async () => {
    const before = stack.sim.requests().length;
    await assert.rejects(stack.sessions.startSession({ ...input(), avatar: { type: 'runway-preset', presetId: 'nope' } }), (err: Error) =>
      /avatar\.presetId: unknown preset; use one of: game-character/.test(err.message),
    );
    await assert.rejects(stack.sessions.startSession({ ...input(), conversationId: 'has spaces' }), /conversationId/);
    await assert.rejects(stack.sessions.startSession({ ...input(), maxDurationSeconds: -5 }), /maxDurationSeconds: must be a positive/);
    assert.equal(stack.sim.requests().length, before);
  });
});
