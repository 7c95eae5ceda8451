// A real worker process is SIGKILLed mid-poll and mid-live, then restarted: the session still finishes
// correctly, and Runway is left with no orphan and no contract violation.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { sessionWorkflowId } from '../workflows/shared';
import type { SessionInput } from '../workflows/types';
import { startSessionStack, uniqueId, type SessionStack } from './helpers/session-stack';
import { startWorkerProcess, type WorkerProcess } from './helpers/worker-process';
import { eventually, withTimeout } from './helpers/wait';
import { roomService } from './helpers/livekit';
import { TrackType } from 'livekit-server-sdk';

function input(): SessionInput {
  const conversationId = uniqueId('crash');
  return {
    conversationId,
    avatar: { type: 'runway-preset', presetId: 'influencer' },
    livekit: { roomName: `room-${conversationId}` },
    mode: 'direct',
    timing: { readyDeadlineSeconds: 60, avatarJoinTimeoutSeconds: 15, monitorIntervalSeconds: 0.5, endCallGraceSeconds: 3, heartbeatTimeoutSeconds: 3 },
  };
}

describe('worker crash', () => {
  let stack: SessionStack;
  let workers: WorkerProcess[] = [];
  before(async () => {
    stack = await startSessionStack({ inProcessWorkers: false, sim: { defaults: { provisioningMs: 100, avatarMedia: 'light' } } });
  });
  afterEach(async () => {
    for (const w of workers) await w.kill('SIGTERM');
    workers = [];
    await eventually('no orphaned Runway sessions', () => (stack.sim.orphans().length === 0 ? true : undefined), 20_000);
    assert.deepEqual(stack.sim.invariantViolations(), []);
  });
  after(async () => {
    await stack?.stop();
  });

  async function spawnWorker(label: string, kind: 'worker' | 'media-worker' = 'worker'): Promise<WorkerProcess> {
    const w = startWorkerProcess(stack, kind, label);
    workers.push(w);
    await withTimeout(w.ready, 60_000, `${label} to start`);
    return w;
  }

  it('SIGKILL mid-poll: the READY poll resumes on a restarted worker from its heartbeat', async () => {
    const first = await spawnWorker('crash-poll-1');
    const inp = input();
    stack.sim.nextSessions([{ provisioningMs: 6000 }]);
    await stack.sessions.startSession(inp);
    await eventually('waiting_ready', async () => ((await stack.sessions.getSession(inp.conversationId))?.phase === 'waiting_ready' ? true : undefined));
    // Let the poll heartbeat at least once, then crash.
    const sid = await eventually('a Runway session', async () => (await stack.sessions.getSession(inp.conversationId))?.runwaySessionId);
    await eventually('status polls', () => (stack.sim.requests().filter((r) => r.endpoint === 'status' && r.sessionId === sid).length >= 3 ? true : undefined));
    await first.kill('SIGKILL');
    await spawnWorker('crash-poll-2');
    const live = await withTimeout(stack.sessions.waitLive(inp.conversationId), 60_000, 'live after restart');
    assert.equal(live.runwaySessionId, sid, 'the same Runway session went live: no second create');
    const history = await stack.env.client.workflow.getHandle(sessionWorkflowId(inp.conversationId)).fetchHistory();
    const pollAttempts = history.events!.filter((e) => e.activityTaskStartedEventAttributes && (e.activityTaskStartedEventAttributes.attempt ?? 0) > 1);
    assert.ok(pollAttempts.length >= 1, 'the poll ran a second attempt after the crash');
    await stack.sessions.endSession(inp.conversationId);
    await stack.env.client.workflow.getHandle(sessionWorkflowId(inp.conversationId)).result();
    const state = await stack.sessions.getSession(inp.conversationId);
    assert.equal(state?.phase, 'completed');
    assert.equal(state?.endReason, 'ended_by_request');
    assert.equal(state?.runwaySessionIds.length, 1);
    assert.equal(stack.sim.session(sid)?.status, 'COMPLETED');
  });

  it('a worker killed after Runway handled a create leaves no untracked session', async () => {
    const first = await spawnWorker('crash-create-1');
    const inp = input();
    // The lost session's avatar stays out of the customer's room (it would join with the same identity
    // as the real one): only the reaper can end it.
    stack.sim.nextSessions([{ joinCustomerRoom: false }]);
    stack.sim.holdCreateAnswers(1);
    await stack.sessions.startSession(inp);
    const lostId = await eventually('Runway created the session, its answer held', () => stack.sim.heldCreates()[0], 30_000);
    await first.kill('SIGKILL');
    stack.sim.releaseHeldCreates('reset'); // the answer had nowhere to go
    await spawnWorker('crash-create-2');
    // The create activity (one attempt) times out; the workflow records an ambiguous create and creates again.
    const live = await withTimeout(stack.sessions.waitLive(inp.conversationId), 90_000, 'live after the lost create');
    assert.notEqual(live.runwaySessionId, lostId);
    const state = await stack.sessions.getSession(inp.conversationId);
    assert.equal(state?.ambiguousCreates.length, 1, 'the lost create is recorded for the reaper');
    assert.ok(state?.events.some((e) => e.type === 'ambiguous_create'));
    assert.deepEqual(state?.runwaySessionIds, [live.runwaySessionId], 'the workflow never learned the lost id');
    assert.ok(!['COMPLETED', 'CANCELLED', 'FAILED'].includes(stack.sim.session(lostId)!.status), 'the lost session is still billing before the reaper runs');

    const report = (await stack.env.client.workflow.execute('reconcileRunwaySessions', {
      taskQueue: 'avatar-sessions',
      workflowId: uniqueId('reaper'),
      args: [{ graceSeconds: 0 }],
    })) as { reaped: { runwaySessionId: string; reason: string }[] };
    assert.deepEqual(
      report.reaped.map((r) => [r.runwaySessionId, r.reason]),
      [[lostId, 'ambiguous_create']],
    );
    assert.equal(stack.sim.session(lostId)?.status, 'CANCELLED');
    assert.equal(stack.sim.session(live.runwaySessionId)?.status, 'RUNNING', 'the owned session is left alone');

    await stack.sessions.endSession(inp.conversationId);
    await withTimeout(stack.env.client.workflow.getHandle(sessionWorkflowId(inp.conversationId)).result(), 60_000, 'session to finish');
    const final = await stack.sessions.getSession(inp.conversationId);
    assert.equal(final?.phase, 'completed');
    assert.equal(final?.endReason, 'ended_by_request');
    // Exactly two Runway sessions for this conversation (the lost one and its replacement), neither billing.
    const ours = stack.sim.sessions().filter((s) => s.id === lostId || s.id === live.runwaySessionId || s.integration?.roomName === inp.livekit.roomName);
    assert.equal(ours.length, 2, 'no duplicate session');
    for (const s of ours) assert.ok(['COMPLETED', 'CANCELLED'].includes(s.status), `Runway session ${s.id} ended (${s.status})`);
  });

  it('SIGKILL mid-live: a restarted worker still ends the session cleanly', async () => {
    const first = await spawnWorker('crash-live-1');
    const inp = input();
    const { live } = await stack.sessions.startAndWaitLive(inp);
    await first.kill('SIGKILL');
    await stack.sessions.endSession(inp.conversationId); // arrives while no worker runs
    await spawnWorker('crash-live-2');
    await withTimeout(stack.env.client.workflow.getHandle(sessionWorkflowId(inp.conversationId)).result(), 60_000, 'session to finish');
    const state = await stack.sessions.getSession(inp.conversationId);
    assert.equal(state?.phase, 'completed');
    assert.equal(state?.endReason, 'ended_by_request');
    assert.ok(['COMPLETED', 'CANCELLED'].includes(stack.sim.session(live.runwaySessionId)!.status));
  });

  it('relay: SIGKILL of the media worker mid-live, the relay resumes on a restarted media worker', async () => {
    await spawnWorker('relay-orchestration');
    const media = await spawnWorker('relay-media-1', 'media-worker');
    const inp = { ...input(), mode: 'relay' as const };
    const { live } = await stack.sessions.startAndWaitLive(inp);
    const rooms = roomService(stack.customer);
    const bridgePublishing = async () => {
      const p = (await rooms.listParticipants(inp.livekit.roomName)).find((x) => x.identity === live.avatarIdentity);
      return p?.tracks.some((t) => t.type === TrackType.VIDEO) ? p.sid : undefined;
    };
    const firstSid = await eventually('the bridge publishes video', bridgePublishing);
    await media.kill('SIGKILL');
    await spawnWorker('relay-media-2', 'media-worker');
    // The heartbeat timeout (3 s) hands the relay to the new media worker, which rejoins both rooms.
    await eventually(
      'the relay resumed on the new media worker',
      async () => {
        const sid = await bridgePublishing();
        return sid && sid !== firstSid ? sid : undefined;
      },
      60_000,
    );
    // A running activity's retries show in its pending state (history records the attempt at completion).
    const pending = (await stack.env.client.workflow.getHandle(sessionWorkflowId(inp.conversationId)).describe()).raw.pendingActivities ?? [];
    assert.ok(
      pending.some((a) => a.activityType?.name === 'relayMedia' && (a.attempt ?? 0) > 1),
      'the relay activity runs its second attempt',
    );
    assert.equal((await stack.sessions.getSession(inp.conversationId))?.phase, 'live');
    await stack.sessions.endSession(inp.conversationId);
    await withTimeout(stack.env.client.workflow.getHandle(sessionWorkflowId(inp.conversationId)).result(), 60_000, 'session to finish');
    assert.equal(stack.sim.session(live.runwaySessionId)?.status, 'COMPLETED');
    await eventually(
      'no participant of this service left',
      async () => ((await rooms.listParticipants(inp.livekit.roomName)).length === 0 ? true : undefined),
      20_000,
    );
  });

  it("relay: Runway's session fails while the media worker is down; the restarted relay finds Runway's room empty and the session ends with Runway's failure", async () => {
    await spawnWorker('gone-orchestration');
    const media = await spawnWorker('gone-media-1', 'media-worker');
    const inp = { ...input(), mode: 'relay' as const };
    const { live } = await stack.sessions.startAndWaitLive(inp);
    await media.kill('SIGKILL');
    // Nobody relays now: the avatar's leaving is seen by no one.
    assert.ok(stack.sim.fail(live.runwaySessionId, 'INTERNAL.TEST_FAILURE'), 'the Runway session was running');
    await spawnWorker('gone-media-2', 'media-worker');
    // Before: the new relay found no video, failed `relay_stalled` and was retried 10 times (minutes),
    // then the session failed relay_stalled. Now Runway's status is read when the room is empty.
    await withTimeout(
      stack.env.client.workflow
        .getHandle(sessionWorkflowId(inp.conversationId))
        .result()
        .catch(() => undefined),
      120_000,
      'session to finish',
    );
    const state = await stack.sessions.getSession(inp.conversationId);
    assert.equal(state?.endReason, 'runway_ended', JSON.stringify(state?.error));
    assert.equal(state?.error?.code, 'INTERNAL.TEST_FAILURE');
    assert.ok(
      state?.events?.some((e) => e.type === 'runway_ended'),
      'the end is recorded as Runway ending the session',
    );
  });

  it('relay renewal: the media worker holding a handed-over relay is killed; the relay moves to another media worker and renewals go on there', async () => {
    await spawnWorker('renew-orchestration');
    const media = await spawnWorker('renew-media-1', 'media-worker');
    const base = input();
    const inp: SessionInput = { ...base, mode: 'relay', timing: { ...base.timing, sessionCapSeconds: 12, renewalLeadSeconds: 2 } };
    const { live } = await stack.sessions.startAndWaitLive(inp);
    const types = async () => (await stack.sessions.getSession(inp.conversationId))?.events.map((e) => e.type) ?? [];
    await eventually(
      'a renewal switched the relay on the first media worker',
      async () => ((await types()).includes('relay_switched') ? true : undefined),
      40_000,
    );
    await media.kill('SIGKILL');
    await spawnWorker('renew-media-2', 'media-worker');
    // The dead worker's own queue is never polled again: the relay (or the next switch) times out there
    // and the relay starts afresh on the new media worker, whose queue later renewals use.
    await eventually(
      'a later renewal switched the relay on the new media worker',
      async () => {
        const t = await types();
        const moved = Math.max(t.lastIndexOf('relay_moved'), t.lastIndexOf('relay_switch_failed'));
        return moved >= 0 && t.lastIndexOf('relay_switched') > moved ? true : undefined;
      },
      90_000,
    );
    const rooms = roomService(stack.customer);
    await eventually(
      'the bridge publishes video',
      async () =>
        (await rooms.listParticipants(inp.livekit.roomName)).find((p) => p.identity === live.avatarIdentity)?.tracks.some((t) => t.type === TrackType.VIDEO)
          ? true
          : undefined,
      20_000,
    );
    await stack.sessions.endSession(inp.conversationId);
    await withTimeout(stack.env.client.workflow.getHandle(sessionWorkflowId(inp.conversationId)).result(), 60_000, 'session to finish');
    const final = await stack.sessions.getSession(inp.conversationId);
    console.log(
      `relay renewal across a media worker crash: ${final?.events
        .filter((e) => /relay_|renew|gap/.test(e.type))
        .map((e) => (e.type === 'relay_switch_failed' ? `${e.type} (${e.message})` : e.type))
        .join(' → ')}`,
    );
    assert.equal(final?.phase, 'completed');
    assert.equal(final?.endReason, 'ended_by_request');
    for (const id of final.runwaySessionIds) assert.ok(['COMPLETED', 'CANCELLED'].includes(stack.sim.session(id)!.status), `Runway session ${id} ended`);
    await eventually(
      'no participant of this service left',
      async () => ((await rooms.listParticipants(inp.livekit.roomName)).length === 0 ? true : undefined),
      20_000,
    );
  });
});
