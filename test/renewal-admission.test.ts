// Long conversations and many of them: renewal past Runway's runtime cap, and admission control
// against the account's concurrent-session limit. Short caps and durations stand in for minutes.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TrackType } from 'livekit-server-sdk';
import { ADMISSION_WORKFLOW_ID, RunwaySessionIdsKey, admissionStateQuery, sessionWorkflowId } from '../workflows/shared';
import type { SessionInput } from '../workflows/types';
import { participantsIn, startSessionStack, uniqueId, type SessionStack } from './helpers/session-stack';
import { viewer } from './helpers/viewer';
import { roomService } from './helpers/livekit';
import { eventually, withTimeout } from './helpers/wait';
import { recordHistory } from './helpers/histories';
import { RunwayClient } from '../src/runway/client';
import { startProcessAvatar, stopAvatarRunner } from '../src/runway-sim/avatar-process';

const CAP = 6;
/** Longer than one cap: a renewal finishes within it. */
const CAN_WAIT_MS = CAP * 2 * 1000;

function input(over: Partial<SessionInput> = {}): SessionInput {
  const conversationId = uniqueId('long');
  return {
    conversationId,
    avatar: { type: 'runway-preset', presetId: 'tennis-coach' },
    livekit: { roomName: `room-${conversationId}` },
    mode: 'direct',
    timing: {
      readyDeadlineSeconds: 20,
      avatarJoinTimeoutSeconds: 8,
      monitorIntervalSeconds: 0.5,
      endCallGraceSeconds: 3,
      heartbeatTimeoutSeconds: 5,
      sessionCapSeconds: CAP,
      renewalLeadSeconds: 2,
    },
    ...over,
  };
}

describe('renewal past the runtime cap', () => {
  let stack: SessionStack;
  before(async () => {
    // Runway's avatars in a process of their own, as in production: in this one they would share the
    // event loop of the relay and the workers (src/runway-sim/avatar-process.ts).
    stack = await startSessionStack({
      sim: { defaults: { provisioningMs: 200, avatarMedia: 'light', runtimeCapSeconds: CAP }, startAvatar: startProcessAvatar },
    });
  });
  after(async () => {
    await stack?.stop();
    await stopAvatarRunner();
  });

  /**
   * Ends the conversation right after a renewal (none in flight, so every Runway session it made was
   * live) and checks that each of them completed, the last run's history stayed small, and nothing is left.
   */
  async function endAndCheck(inp: SessionInput, historyName: string): Promise<void> {
    const { conversationId } = inp;
    const handle = stack.env.client.workflow.getHandle(sessionWorkflowId(conversationId));
    await eventually(
      'a renewal just finished',
      async () => ((await stack.sessions.getSession(conversationId))?.events.at(-1)?.type === 'renewed' ? true : undefined),
      CAN_WAIT_MS,
      50,
    );
    await stack.sessions.endSession(conversationId);
    await handle.result();
    const final = await stack.sessions.getSession(conversationId);
    assert.equal(final?.endReason, 'ended_by_request');
    const ids = final.runwaySessionIds;
    assert.ok(ids.length >= 4);
    // The search attribute stays bounded (current and previous): Temporal limits a value to 2 KiB.
    const listed = (await handle.describe()).typedSearchAttributes.get(RunwaySessionIdsKey) ?? [];
    assert.ok(listed.length <= 2 && listed.length >= 1, `RunwaySessionIds holds ${listed.length} ids`);
    assert.deepEqual(listed, ids.slice(-listed.length));
    for (const id of ids) assert.equal(stack.sim.session(id)?.status, 'COMPLETED', `Runway session ${id} completed`);
    // Continue-as-new kept each run's history small.
    const history = await handle.fetchHistory();
    assert.ok(history.events!.length < 150, `last run has ${history.events!.length} events`);
    await eventually(
      'no participant of the service left',
      async () => ((await participantsIn(stack.customer, inp.livekit.roomName)).length === 0 ? true : undefined),
      10_000,
    );
    assert.deepEqual(stack.sim.orphans(), []);
    assert.deepEqual(stack.sim.invariantViolations(), []);
    // Each renewal's extra slot was given back (not leaked until the controller's closed-holder check).
    await eventually(
      'no slot held by the conversation',
      async () => {
        const { holders } = await stack.env.client.workflow.getHandle(ADMISSION_WORKFLOW_ID).query(admissionStateQuery);
        return holders.some((h) => h.holder === handle.workflowId) ? undefined : true;
      },
      5000,
    );
    await recordHistory(stack.env.client, sessionWorkflowId(conversationId), historyName);
  }

  it('direct: one avatar stays in the room across three caps; every old Runway session completes', async () => {
    const inp = input();
    const { live } = await stack.sessions.startAndWaitLive(inp);
    const rooms = roomService(stack.customer);
    // Sampled until three renewals happened (a generous deadline: how fast depends on the machine).
    const started = Date.now();
    let samples = 0;
    let missing = 0;
    let longestGapMs = 0;
    let gapStart: number | undefined;
    let renewals = 0;
    while (renewals < 3 && Date.now() - started < 150_000) {
      const p = (await rooms.listParticipants(inp.livekit.roomName)).find((x) => x.identity === live.avatarIdentity);
      const hasVideo = !!p?.tracks.some((t) => t.type === TrackType.VIDEO && !t.muted);
      samples++;
      if (!hasVideo) {
        missing++;
        gapStart ??= Date.now();
      } else if (gapStart !== undefined) {
        longestGapMs = Math.max(longestGapMs, Date.now() - gapStart);
        gapStart = undefined;
      }
      if (samples % 10 === 0) renewals = (await stack.sessions.getSession(inp.conversationId))?.renewals ?? 0;
      await new Promise((r) => setTimeout(r, 100));
    }
    if (gapStart !== undefined) longestGapMs = Math.max(longestGapMs, Date.now() - gapStart);
    const state = await stack.sessions.getSession(inp.conversationId);
    // A figure, not a bound (npm run bench:relay -- --mode direct measures it properly).
    console.log(`renewal(direct): ${state?.renewals} renewals, ${samples} samples, ${missing} without avatar video, longest gap ${longestGapMs} ms`);
    assert.ok((state?.renewals ?? 0) >= 3, `renewed ${state?.renewals} times`);
    // The new avatar takes over the same identity: after the renewals the avatar is in the room with video.
    await eventually(
      'the avatar in the room with video',
      async () =>
        (await rooms.listParticipants(inp.livekit.roomName)).find((x) => x.identity === live.avatarIdentity)?.tracks.some((t) => t.type === TrackType.VIDEO)
          ? true
          : undefined,
      20_000,
    );
    assert.ok(missing <= (state?.renewals ?? 0) * 3, `${missing} samples without avatar video for ${state?.renewals} renewals`);
    await endAndCheck(inp, 'renewal-direct-last-run');
  });

  it('relay: the bridge stays published across three renewals while its source switches; each later Runway session is served; every old one completes', async () => {
    // A cap of its own, long enough that a renewal on a busy machine is done before it (the adaptive
    // lead is at most half the cap): what is checked is that the relay switches, not how fast.
    const cap = 10;
    stack.sim.configure({ defaults: { runtimeCapSeconds: cap } });
    const base = input({ mode: 'relay' });
    const inp = { ...base, timing: { ...base.timing, sessionCapSeconds: cap, renewalLeadSeconds: 4 } };
    const { live } = await stack.sessions.startAndWaitLive(inp);
    assert.equal(live.mode, 'relay');
    const room = inp.livekit.roomName;
    const user = await viewer(stack.customer, room);
    const rooms = roomService(stack.customer);
    const videoTrackSids = new Set<string>();
    const participantSids = new Set<string>();
    let samples = 0;
    let missing = 0;
    const started = Date.now();
    let sampling = true;
    // The bridge's video track, sampled throughout, in the background.
    const sampler = (async () => {
      while (sampling) {
        const bridge = (await rooms.listParticipants(room).catch(() => undefined))?.find((p) => p.identity === live.avatarIdentity);
        const video = bridge?.tracks.find((t) => t.type === TrackType.VIDEO && !t.muted);
        samples++;
        if (!video) missing++;
        else videoTrackSids.add(video.sid);
        if (bridge) participantSids.add(bridge.sid);
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    const renewals = async () => (await stack.sessions.getSession(inp.conversationId))?.renewals ?? 0;
    try {
      await eventually('the viewer receives the avatar', () => (user.arrivals.length > 0 ? true : undefined), 30_000);
      await eventually('three renewals', async () => ((await renewals()) >= 3 ? true : undefined), cap * 3 * 1000 + 120_000, 500);
      // The last renewal's avatar reaches the viewer too (its counters start again from 1).
      const seen = user.counters.length;
      await eventually('frames after the last renewal', () => (user.counters.length > seen + 5 ? true : undefined), 30_000);
    } finally {
      sampling = false;
      await sampler;
      await user.close();
      stack.sim.configure({ defaults: { runtimeCapSeconds: CAP } });
    }
    const state = await stack.sessions.getSession(inp.conversationId);
    // Figures for the log (the benchmark, `npm run bench:relay -- --renewals N`, reports them properly).
    const arrivals = user.arrivals.filter((t) => t >= started);
    let longestGapMs = 0;
    for (let i = 1; i < arrivals.length; i++) longestGapMs = Math.max(longestGapMs, arrivals[i]! - arrivals[i - 1]!);
    const relayPauses = state!.events.filter((e) => e.type === 'relay_switched').map((e) => Number(/(\d+) ms/.exec(e.message)?.[1]));
    console.log(
      `renewal(relay): ${state?.renewals} renewals, ${samples} samples, ${arrivals.length} frames at the viewer, longest gap between frames ${longestGapMs} ms; relay's own longest pause per switch: ${relayPauses.join(', ')} ms`,
    );
    // One bridge, one video track, never unpublished: the relay switched its source underneath.
    assert.equal(missing, 0, `the bridge had a published video track at every sample (${missing} of ${samples} without)`);
    assert.equal(participantSids.size, 1, `one bridge participant throughout: ${[...participantSids]}`);
    assert.equal(videoTrackSids.size, 1, `one video track throughout: ${[...videoTrackSids]}`);
    assert.ok(!state?.events.some((e) => e.type === 'relay_switch_failed' || e.type === 'relay_moved'), JSON.stringify(state?.events.map((e) => e.type)));
    // Each later Runway session was served: the relay joined its room (RUNNING) and its avatar's frames
    // reached the viewer (each simulated avatar counts its frames from 1: one restart per source).
    const ids = state!.runwaySessionIds;
    for (const id of ids) assert.ok(stack.sim.session(id)?.runningAt, `Runway session ${id} was joined by the relay`);
    let restarts = 0;
    for (let i = 1; i < user.counters.length; i++) if (user.counters[i]! < user.counters[i - 1]!) restarts++;
    assert.ok(restarts >= 3, `the viewer saw the avatar of each later Runway session (${restarts} counter restarts for ${state?.renewals} renewals)`);
    await endAndCheck(inp, 'renewal-relay-last-run');
  });
});

describe('admission control', () => {
  let stack: SessionStack;
  before(async () => {
    stack = await startSessionStack({ sim: { defaults: { provisioningMs: 300, avatarMedia: 'off' }, account: { maxConcurrentSessions: 3 } } });
  });
  after(async () => {
    await stack?.stop();
  });

  it('ten sessions against a limit of three: never more than three at Runway, all go live in turn, none fails', async () => {
    const inputs = Array.from({ length: 10 }, () => input({ maxDurationSeconds: 2, timing: { ...input().timing, sessionCapSeconds: 0 } }));
    // avatarMedia 'off' has no avatar to join the room: relay-free direct needs a joined avatar, so use light.
    stack.sim.configure({ defaults: { avatarMedia: 'light' } });
    for (const i of inputs) await stack.sessions.startSession(i);
    const results = await withTimeout(
      Promise.all(inputs.map((i) => stack.env.client.workflow.getHandle(sessionWorkflowId(i.conversationId)).result())),
      120_000,
      'all ten sessions to finish',
    );
    for (const r of results) {
      assert.equal(r.endReason, 'max_duration');
      assert.ok(r.phaseTimes.live, `${r.conversationId} went live`);
    }
    assert.ok(stack.sim.maxConcurrentObserved <= 3, `peak ${stack.sim.maxConcurrentObserved} concurrent Runway sessions`);
    assert.ok(
      results.some((r) => r.phaseTimes.waiting_capacity),
      'some sessions waited for capacity',
    );
    const admission = await stack.env.client.workflow.getHandle(ADMISSION_WORKFLOW_ID).query(admissionStateQuery);
    assert.equal(admission.holders.length, 0, 'every slot released');
    assert.deepEqual(stack.sim.orphans(), []);
    await recordHistory(stack.env.client, ADMISSION_WORKFLOW_ID, process.env.ADMISSION_HISTORY_NAME ?? 'admission-ten-sessions-limit-three');
  });

  it('a renewal Runway refuses keeps its slot and backs off: one grant per renewal, however many retries', async () => {
    // Another client on the account holds two of its three sessions: our renewal's create is refused
    // (concurrency_limited) although admission control granted the extra slot.
    stack.sim.configure({ defaults: { avatarMedia: 'light' } });
    const runway = new RunwayClient({ apiKey: stack.sim.apiKey, baseUrl: stack.sim.baseUrl });
    const outside: string[] = [];
    try {
      for (let i = 0; i < 2; i++)
        outside.push((await runway.createSession({ model: 'gwm1_avatars', avatar: { type: 'runway-preset', presetId: 'music-superstar' } })).id);
      const a = input({ timing: { ...input().timing, sessionCapSeconds: 30, renewalLeadSeconds: 20 } });
      const admission = () => stack.env.client.workflow.getHandle(ADMISSION_WORKFLOW_ID).query(admissionStateQuery);
      await stack.sessions.startAndWaitLive(a).catch(async (err) => {
        throw new Error(`not live: ${JSON.stringify((await stack.sessions.getSession(a.conversationId))?.events)}`, { cause: err });
      });
      const grantedAtLive = (await admission()).granted;
      const failures = async () => ((await stack.sessions.getSession(a.conversationId))?.events ?? []).filter((e) => e.type === 'renewal_failed');
      await eventually('two refused renewal attempts', async () => ((await failures()).length >= 2 ? true : undefined), 40_000, 200);
      const [first, second] = await failures();
      assert.ok(Date.parse(second!.at) - Date.parse(first!.at) >= 4000, `retried after ${Date.parse(second!.at) - Date.parse(first!.at)} ms`);
      for (const id of outside.splice(0)) await runway.cancelSession(id);
      await eventually(
        'renewed once capacity is back',
        async () => ((await stack.sessions.getSession(a.conversationId))?.events.some((e) => e.type === 'renewed') ? true : undefined),
        40_000,
        200,
      );
      const state = await stack.sessions.getSession(a.conversationId);
      assert.equal((await admission()).granted - grantedAtLive, 1, 'the renewal was granted one slot across its retries');
      assert.equal(state!.events.filter((e) => e.type === 'slot_granted').length, 2, 'initial slot and one renewal slot');
      await stack.sessions.endSession(a.conversationId);
      await stack.env.client.workflow.getHandle(sessionWorkflowId(a.conversationId)).result();
      // Well before the controller's 30 s check for closed holders would free a leaked slot.
      await eventually('every slot released', async () => ((await admission()).holders.length === 0 ? true : undefined), 5000);
      assert.deepEqual(stack.sim.orphans(), []);
    } finally {
      for (const id of outside) await runway.cancelSession(id).catch(() => undefined);
      await runway.close();
    }
  });

  it('a terminated session does not leak its slot', async () => {
    const a = input();
    await stack.sessions.startAndWaitLive(a);
    const handle = stack.env.client.workflow.getHandle(sessionWorkflowId(a.conversationId));
    await handle.terminate('test: simulate a lost workflow');
    await eventually(
      'slot released after the holder check',
      async () => {
        const s = await stack.env.client.workflow.getHandle(ADMISSION_WORKFLOW_ID).query(admissionStateQuery);
        return s.holders.some((h) => h.holder === handle.workflowId) ? undefined : true;
      },
      30_000,
    );
    // The terminated session's Runway session is an orphan only the reaper can end.
    const { reconcileRunwaySessions } = await import('../workflows/reaper');
    void reconcileRunwaySessions;
    const report = await stack.env.client.workflow.execute('reconcileRunwaySessions', {
      taskQueue: 'avatar-sessions',
      workflowId: uniqueId('reaper'),
      args: [{ graceSeconds: 0 }],
    });
    assert.ok((report as { reaped: { reason: string }[] }).reaped.some((r) => r.reason === 'owner_closed'));
    await eventually('no orphans', () => (stack.sim.orphans().length === 0 ? true : undefined));
  });
});
