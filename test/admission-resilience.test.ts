// Admission control when things around it fail (issues 14.1 and 20), on the real stack: the
// organization endpoint is a hint, never a gate (404, an answer without gwm1_avatars, a malformed
// one); the last good limit survives a failing endpoint; Runway's own refusals teach the limit; a
// controller lost while a session waits is recovered by the session repeating its request; a holder
// stuck RUNNING (its workflow task never completes) does not keep its slot forever.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  ADMISSION_TASK_QUEUE,
  ADMISSION_WORKFLOW_ID,
  ADMISSION_WORKFLOW_TYPE,
  SESSION_WORKFLOW_TYPE,
  admissionStateQuery,
  requestSlotSignal,
  sessionWorkflowId,
} from '../workflows/shared';
import type { ControllerState } from '../workflows/admission';
import type { SessionInput, SessionState } from '../workflows/types';
import type { Account } from '../src/runway-sim/server';
import { startSessionStack, uniqueId, type SessionStack } from './helpers/session-stack';
import { eventually, withTimeout } from './helpers/wait';

function input(over: Partial<SessionInput> = {}): SessionInput {
  const conversationId = uniqueId('adm');
  return {
    conversationId,
    avatar: { type: 'runway-preset', presetId: 'tennis-coach' },
    livekit: { roomName: `room-${conversationId}` },
    mode: 'direct',
    maxDurationSeconds: 2,
    timing: {
      readyDeadlineSeconds: 30,
      avatarJoinTimeoutSeconds: 30,
      monitorIntervalSeconds: 0.5,
      endCallGraceSeconds: 2,
      heartbeatTimeoutSeconds: 5,
      sessionCapSeconds: 0,
      capacityWaitSeconds: 90,
    },
    ...over,
  };
}

describe('admission control when its surroundings fail', () => {
  let stack: SessionStack;
  before(async () => {
    stack = await startSessionStack({ sim: { defaults: { provisioningMs: 200, avatarMedia: 'light' } } });
  });
  after(async () => {
    await stack?.stop();
  });
  const controller = () => stack.env.client.workflow.getHandle(ADMISSION_WORKFLOW_ID);
  const admission = async () => (await controller().query(admissionStateQuery)) as ControllerState;
  // Each test starts with no controller (the next request starts a fresh one) and an account of its own.
  afterEach(async () => {
    await controller()
      .terminate('test: next case')
      .catch(() => undefined);
  });
  const account = (a: Partial<Account>) => stack.sim.setAccount({ organization: 'full', maxConcurrentSessions: 20, ...a });

  /** Starts the sessions at once and waits for every one to end; their final states. */
  async function runAll(n: number): Promise<SessionState[]> {
    const inputs = Array.from({ length: n }, () => input());
    for (const i of inputs) await stack.sessions.startSession(i);
    return withTimeout(
      Promise.all(inputs.map((i) => stack.env.client.workflow.getHandle(sessionWorkflowId(i.conversationId)).result())),
      150_000,
      `all ${n} sessions to finish`,
    );
  }

  function assertAllServed(results: SessionState[]): void {
    for (const r of results) {
      assert.equal(r.endReason, 'max_duration', `${r.conversationId}: ${r.endReason} ${JSON.stringify(r.error)}`);
      assert.ok(r.phaseTimes.live, `${r.conversationId} went live`);
    }
  }

  it('organization 404: the controller keeps running, admits, and learns the limit from Runway refusals', async () => {
    account({ organization: 'not_found', maxConcurrentSessions: 3 });
    const refusedBefore = stack.sim.requests().filter((r) => r.endpoint === 'create' && r.status === 429).length;
    const results = await runAll(8);
    assertAllServed(results);
    assert.ok(
      stack.sim.requests().filter((r) => r.endpoint === 'create' && r.status === 429).length > refusedBefore,
      'Runway refused some creates (nothing else told the limit)',
    );
    const desc = await controller().describe();
    assert.equal(desc.status.name, 'RUNNING', 'the controller did not fail');
    const state = await admission();
    assert.ok((state.refusals ?? 0) > 0, 'sessions reported the refusals');
    assert.equal(state.holders.length, 0, 'every slot released');
    assert.match(state.limitSource, /learned|unknown/);
    assert.deepEqual(stack.sim.orphans(), []);
  });

  for (const organization of ['without_avatars', 'malformed'] as const) {
    it(`organization answer ${organization}: no made-up limit of one`, async () => {
      account({ organization, maxConcurrentSessions: 3 });
      const results = await runAll(6);
      assertAllServed(results);
      const state = await admission();
      assert.notEqual(state.limit, 1, `limit ${state.limit} (${state.limitSource})`);
      assert.equal((await controller().describe()).status.name, 'RUNNING');
      // Sessions overlapped at Runway: a limit of one would have run them one at a time.
      const ours = new Set(results.flatMap((r) => r.runwaySessionIds));
      const spans = stack.sim
        .sessions()
        .filter((s) => ours.has(s.id))
        .map((s) => [Date.parse(s.createdAt), Date.parse(s.endedAt ?? new Date().toISOString())] as const);
      const overlapped = spans.some(([a0, a1], i) => spans.some(([b0, b1], j) => i !== j && a0 < b1 && b0 < a1));
      assert.ok(overlapped, 'some of the sessions ran at Runway at the same time');
    });
  }

  it('the last good limit survives a failing organization endpoint', async () => {
    account({ organization: 'full', maxConcurrentSessions: 3 });
    const a = input({ maxDurationSeconds: 120 });
    await stack.sessions.startAndWaitLive(a);
    await eventually('the controller knows the account limit', async () => ((await admission()).limit === 3 ? true : undefined), 20_000);
    account({ organization: 'not_found', maxConcurrentSessions: 3 });
    const reads = () => stack.sim.requests().filter((r) => r.endpoint === 'organization' && r.status === 404).length;
    // The worker's controller checks every 2 s: two failed reads.
    await eventually('two failed organization reads', () => (reads() >= 2 ? true : undefined), 30_000, 200);
    assert.equal((await controller().describe()).status.name, 'RUNNING', 'the controller did not fail');
    const state = await admission();
    assert.equal(state.limit, 3, `limit ${state.limit} (${state.limitSource})`);
    assert.equal(state.holders.length, 1);
    await stack.sessions.endSession(a.conversationId);
    await stack.env.client.workflow.getHandle(sessionWorkflowId(a.conversationId)).result();
  });

  it('a renewal is granted before a new session that asked first', async () => {
    account({ organization: 'full', maxConcurrentSessions: 2 });
    // r renews 25 s after it is live (cap 40 s, lead 15 s); x holds the other slot; n waits for one.
    const r = input({ maxDurationSeconds: 300, timing: { ...input().timing, sessionCapSeconds: 40, renewalLeadSeconds: 15 } });
    const x = input({ maxDurationSeconds: 300 });
    const n = input({ maxDurationSeconds: 300 });
    try {
      await stack.sessions.startAndWaitLive(r);
      await stack.sessions.startAndWaitLive(x);
      await stack.sessions.startSession(n);
      await eventually(
        "n queued, then r's renewal queued behind it",
        async () => {
          const { queue } = await admission();
          return queue.length === 2 && queue.some((q) => q.holder === sessionWorkflowId(n.conversationId)) ? true : undefined;
        },
        40_000,
        200,
      );
      const { queue } = await admission();
      const nAt = Date.parse(queue.find((q) => q.holder === sessionWorkflowId(n.conversationId))!.at);
      const rAt = Date.parse(queue.find((q) => q.holder === sessionWorkflowId(r.conversationId))!.at);
      assert.ok(nAt < rAt, 'n asked first');
      assert.equal(queue[0]!.holder, sessionWorkflowId(r.conversationId), 'the renewal is first in line');
      await stack.sessions.endSession(x.conversationId);
      const events = async (c: SessionInput) => (await stack.sessions.getSession(c.conversationId))?.events ?? [];
      // r's second grant is its renewal's extra slot; n is served once the renewal gives it back.
      const rRenewalGrant = await eventually("r's renewal granted", async () => (await events(r)).filter((e) => e.type === 'slot_granted')[1], 60_000, 200);
      const nGrant = await eventually('n granted', async () => (await events(n)).find((e) => e.type === 'slot_granted'), 60_000, 200);
      assert.ok(Date.parse(rRenewalGrant.at) < Date.parse(nGrant.at), `r's renewal was granted at ${rRenewalGrant.at}, n at ${nGrant.at}`);
      await eventually('r renewed', async () => ((await events(r)).some((e) => e.type === 'renewed') ? true : undefined), 60_000, 200);
    } finally {
      for (const c of [r, x, n]) await stack.sessions.endSession(c.conversationId).catch(() => undefined);
      for (const c of [r, x, n])
        await stack.env.client.workflow
          .getHandle(sessionWorkflowId(c.conversationId))
          .result()
          .catch(() => undefined);
    }
    assert.deepEqual(stack.sim.orphans(), []);
  });

  it('a holder stuck RUNNING loses its slot; a waiting session is served', async () => {
    account({ organization: 'full', maxConcurrentSessions: 1 });
    // The controller, started here to call a holder stuck after 5 s (production: 10 min).
    await stack.env.client.workflow.signalWithStart(ADMISSION_WORKFLOW_TYPE, {
      workflowId: ADMISSION_WORKFLOW_ID,
      taskQueue: ADMISSION_TASK_QUEUE,
      args: [{ checkIntervalSeconds: 2, stuckAfterSeconds: 5 }],
      signal: requestSlotSignal,
      signalArgs: [{ requestId: uniqueId('probe'), holder: 'nobody', at: new Date().toISOString() }],
    });
    // A session workflow on a queue no worker polls: RUNNING, its first workflow task pending forever.
    const stuck = await stack.env.client.workflow.start(SESSION_WORKFLOW_TYPE, {
      workflowId: uniqueId('stuck'),
      taskQueue: uniqueId('no-worker'),
      args: [input()],
    });
    try {
      await controller().signal(requestSlotSignal, { requestId: uniqueId('stuck-slot'), holder: stuck.workflowId, at: new Date().toISOString() });
      await eventually(
        'the stuck workflow holds the slot',
        async () => ((await admission()).holders.some((h) => h.holder === stuck.workflowId) ? true : undefined),
        30_000,
        200,
      );
      const b = input({ maxDurationSeconds: 120 });
      await stack.sessions.startSession(b);
      await eventually(
        'the stuck holder is released',
        async () => ((await admission()).holders.some((h) => h.holder === stuck.workflowId) ? undefined : true),
        60_000,
        250,
      );
      assert.equal((await stuck.describe()).status.name, 'RUNNING', 'released as stuck, not as closed');
      assert.ok(((await admission()).droppedHolders ?? 0) >= 1);
      await eventually('b goes live', async () => ((await stack.sessions.getSession(b.conversationId))?.phase === 'live' ? true : undefined), 60_000, 200);
      await stack.sessions.endSession(b.conversationId);
      assert.equal((await stack.env.client.workflow.getHandle(sessionWorkflowId(b.conversationId)).result()).endReason, 'ended_by_request');
    } finally {
      await stuck.terminate('test: done').catch(() => undefined);
    }
    assert.deepEqual(stack.sim.orphans(), []);
  });

  it('a controller lost while a session waits: the session asks again and is served', async () => {
    account({ organization: 'full', maxConcurrentSessions: 1 });
    const a = input({ maxDurationSeconds: 120 });
    const b = input({ maxDurationSeconds: 120 });
    await stack.sessions.startAndWaitLive(a);
    await stack.sessions.startSession(b);
    await eventually(
      'b waits for a slot',
      async () => ((await stack.sessions.getSession(b.conversationId))?.phase === 'waiting_capacity' ? true : undefined),
      20_000,
    );
    await eventually('b is queued', async () => ((await admission()).queue.length === 1 ? true : undefined), 20_000);
    // The controller and everything it knew are gone (and so is a's release, below).
    await controller().terminate('test: controller lost');
    await stack.sessions.endSession(a.conversationId);
    await stack.env.client.workflow.getHandle(sessionWorkflowId(a.conversationId)).result();
    const started = Date.now();
    await eventually('b goes live', async () => ((await stack.sessions.getSession(b.conversationId))?.phase === 'live' ? true : undefined), 60_000, 200);
    console.log(`admission: the waiting session was served ${Date.now() - started} ms after the holder ended (capacity deadline 90 s)`);
    await stack.sessions.endSession(b.conversationId);
    const final = await stack.env.client.workflow.getHandle(sessionWorkflowId(b.conversationId)).result();
    assert.equal(final.endReason, 'ended_by_request');
    assert.deepEqual(stack.sim.orphans(), []);
  });
});
