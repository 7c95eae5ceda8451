// Relay mode end to end: the simulator's avatar lives in "Runway's" LiveKit room; the media worker
// consumes the session and relays it into the customer's room on another real LiveKit server.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  AudioFrame, AudioSource, AudioStream, LocalAudioTrack, Room, RoomEvent, TrackKind, TrackPublishOptions, TrackSource, VideoBufferType, VideoStream,
  type RemoteTrack,
} from '@livekit/rtc-node';
import { decodeCounter } from '../src/media/frame-code';
import { RUNWAY_EVENTS_TOPIC } from '../src/media/relay';
import { bridgeIdentity, sessionWorkflowId } from '../workflows/shared';
import type { SessionInput } from '../workflows/types';
import { joinToken } from './helpers/livekit';
import { participantsIn, startSessionStack, uniqueId, type SessionStack } from './helpers/session-stack';
import { eventually, withTimeout } from './helpers/wait';
import { recordHistory } from './helpers/histories';

const timing = { readyDeadlineSeconds: 20, avatarJoinTimeoutSeconds: 4, monitorIntervalSeconds: 0.5, endCallGraceSeconds: 3, heartbeatTimeoutSeconds: 5 };

function input(over: Partial<SessionInput> = {}): SessionInput {
  const conversationId = uniqueId('relay');
  return { conversationId, avatar: { type: 'runway-preset', presetId: 'music-superstar' }, livekit: { roomName: `room-${conversationId}` }, mode: 'relay', timing, ...over };
}

/** An rtc-node participant in the customer's room, like a user's browser. */
async function viewer(stack: SessionStack, room: string, identity = uniqueId('user')) {
  const r = new Room();
  const counters: number[] = [];
  const data: { topic?: string; text: string }[] = [];
  let audioFrames = 0;
  const streams: (VideoStream | AudioStream)[] = [];
  r.on(RoomEvent.TrackSubscribed, (track: RemoteTrack) => {
    if (track.kind === TrackKind.KIND_VIDEO) {
      const s = new VideoStream(track);
      streams.push(s);
      void (async () => {
        for await (const ev of s) {
          const i420 = ev.frame.type === VideoBufferType.I420 ? ev.frame : ev.frame.convert(VideoBufferType.I420);
          const n = decodeCounter({ width: i420.width, height: i420.height, data: i420.data });
          if (n !== undefined) counters.push(n);
        }
      })().catch(() => undefined);
    } else {
      const s = new AudioStream(track, { sampleRate: 48000, numChannels: 1 });
      streams.push(s);
      void (async () => {
        for await (const f of s) {
          let sum = 0;
          for (const x of f.data) sum += x * x;
          if (Math.sqrt(sum / f.data.length) > 200) audioFrames++;
        }
      })().catch(() => undefined);
    }
  });
  r.on(RoomEvent.DataReceived, (payload, _p, _k, topic) => data.push({ topic, text: new TextDecoder().decode(payload) }));
  await r.connect(stack.customer.url, await joinToken(stack.customer, room, identity), { autoSubscribe: true, dynacast: false });
  return {
    room: r,
    counters,
    data,
    audioFrames: () => audioFrames,
    async close() {
      for (const s of streams) await s.cancel().catch(() => undefined);
      await r.disconnect();
    },
  };
}

describe('relay mode', () => {
  let stack: SessionStack;
  before(async () => {
    stack = await startSessionStack({ sim: { defaults: { provisioningMs: 100, avatarMedia: 'full' } } });
  });
  after(async () => {
    await stack?.stop();
  });
  afterEach(async () => {
    await eventually('no orphaned Runway sessions', () => (stack.sim.orphans().length === 0 ? true : undefined), 15_000);
    assert.deepEqual(stack.sim.invariantViolations(), []);
  });

  it('relays the avatar into the customer room both ways, and ends with END_CALL', async () => {
    const inp = input();
    // A user is in the room first, speaking: Runway's character must hear them through the mix.
    const user = await viewer(stack, inp.livekit.roomName);
    const mic = new AudioSource(48000, 1, 200);
    await user.room.localParticipant!.publishTrack(LocalAudioTrack.createAudioTrack('mic', mic), new TrackPublishOptions({ source: TrackSource.SOURCE_MICROPHONE }));
    let speaking = true;
    const speak = (async () => {
      let phase = 0;
      while (speaking) {
        const samples = new Int16Array(480);
        for (let i = 0; i < samples.length; i++) samples[i] = Math.round(6000 * Math.sin(((phase + i) * 2 * Math.PI * 300) / 48000));
        phase += samples.length;
        await mic.captureFrame(new AudioFrame(samples, 48000, 1, samples.length)).catch(() => undefined);
      }
    })();
    try {
      const { live } = await stack.sessions.startAndWaitLive(inp);
      assert.equal(live.mode, 'relay');
      assert.equal(live.avatarIdentity, bridgeIdentity(inp.conversationId));
      assert.ok((await participantsIn(stack.customer, inp.livekit.roomName)).includes(live.avatarIdentity));

      // The avatar's video, frame counters increasing, and its voice, arrive in the customer's room.
      await eventually('avatar frames in the customer room', () => (user.counters.length >= 10 ? true : undefined), 15_000);
      const seen = user.counters.slice(0, 10);
      for (let i = 1; i < seen.length; i++) assert.ok(seen[i]! > seen[i - 1]!, `frame counters increase: ${seen.join(',')}`);
      await eventually('avatar audio in the customer room', () => (user.audioFrames() > 20 ? true : undefined), 15_000);
      // Runway's data messages arrive on the documented topic.
      await eventually('Runway data on runway.events', () => (user.data.some((d) => d.topic === RUNWAY_EVENTS_TOPIC && d.text.includes('transcript')) ? true : undefined), 10_000);
      // The user's voice reaches Runway's character.
      const avatar = stack.sim.avatar(live.runwaySessionId);
      assert.ok(avatar, 'the simulated avatar is running');
      await eventually('the avatar hears the customer mix', () => (avatar.stats().audioFramesHeard > 20 ? true : undefined), 15_000);

      await stack.sessions.endSession(inp.conversationId);
      const state = await withTimeout(stack.env.client.workflow.getHandle(sessionWorkflowId(inp.conversationId)).result(), 60_000, 'relay session to end');
      assert.equal(state.endReason, 'ended_by_request');
      const runway = stack.sim.session(live.runwaySessionId)!;
      assert.equal(runway.status, 'COMPLETED');
      assert.equal(runway.endedBy, 'END_CALL', 'the relay said END_CALL before leaving');
      await eventually('the bridge left the customer room', async () => ((await participantsIn(stack.customer, inp.livekit.roomName)).includes(live.avatarIdentity) ? undefined : true));
      await recordHistory(stack.env.client, sessionWorkflowId(inp.conversationId), 'relay-end-by-request');
    } finally {
      speaking = false;
      await speak;
      await mic.close().catch(() => undefined);
      await user.close();
    }
  });

  it('auto mode falls back to relay when the account rejects the LiveKit integration', async () => {
    stack.sim.setAccount({ livekitIntegration: false });
    try {
      const inp = input({ mode: 'auto' });
      const { live } = await stack.sessions.startAndWaitLive(inp);
      assert.equal(live.mode, 'relay');
      const state = await stack.sessions.getSession(inp.conversationId);
      assert.ok(state?.events.some((e) => e.type === 'fallback_to_relay'));
      await stack.sessions.endSession(inp.conversationId);
      const done = await withTimeout(stack.env.client.workflow.getHandle(sessionWorkflowId(inp.conversationId)).result(), 60_000, 'fallback session to end');
      assert.equal(done.phase, 'completed');
      await recordHistory(stack.env.client, sessionWorkflowId(inp.conversationId), 'relay-auto-fallback');
    } finally {
      stack.sim.setAccount({ livekitIntegration: true });
    }
  });

  it('Runway ending the session ends the relay and the workflow with runway_ended', async () => {
    const inp = input();
    stack.sim.nextSessions([{ runtimeCapSeconds: 2 }]);
    await stack.sessions.startAndWaitLive(inp);
    const state = await withTimeout(stack.env.client.workflow.getHandle(sessionWorkflowId(inp.conversationId)).result(), 60_000, 'relay session to end');
    assert.equal(state.endReason, 'runway_ended');
    assert.deepEqual(await participantsIn(stack.customer, inp.livekit.roomName), []);
  });

  it('a stalled avatar (no video) fails the relay, which is retried, then the session ends cleanly', async () => {
    const inp = input();
    const { live } = await stack.sessions.startAndWaitLive(inp);
    stack.sim.avatar(live.runwaySessionId)!.freezeVideo();
    const handle = stack.env.client.workflow.getHandle(sessionWorkflowId(inp.conversationId));
    const outcome = await withTimeout(handle.result().then(() => 'completed', () => 'failed'), 90_000, 'the stalled session to end');
    assert.equal(outcome, 'failed');
    const state = await stack.sessions.getSession(inp.conversationId);
    assert.equal(state?.error?.code, 'relay_stalled');
    assert.match(state!.error!.message, /no avatar video/);
    const history = await handle.fetchHistory();
    assert.ok(history.events!.some((e) => e.activityTaskFailedEventAttributes), 'the relay activity failed');
    assert.ok(history.events!.some((e) => (e.activityTaskStartedEventAttributes?.attempt ?? 0) >= 2), 'after a retry on a fresh bridge');
    assert.ok(['COMPLETED', 'CANCELLED'].includes(stack.sim.session(live.runwaySessionId)!.status));
    await eventually('the bridge left', async () => ((await participantsIn(stack.customer, inp.livekit.roomName)).length === 0 ? true : undefined));
  });
});
