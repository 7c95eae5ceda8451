// Proves the real servers are real: Temporal runs a workflow through a worker, LiveKit creates and
// lists rooms and carries media between two rtc-node participants.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from '@temporalio/worker';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import {
  Room,
  RoomEvent,
  VideoSource,
  LocalVideoTrack,
  TrackPublishOptions,
  TrackSource,
  VideoFrame,
  VideoBufferType,
  VideoStream,
  TrackKind,
  dispose,
} from '@livekit/rtc-node';
import { startTemporal } from './helpers/temporal';
import { joinToken, roomService, startTestLiveKit, type LiveKitServer } from './helpers/livekit';
import { withTimeout } from './helpers/wait';
import { SEARCH_ATTRIBUTES } from '../workflows/shared';

describe('real Temporal dev server', () => {
  let env: TestWorkflowEnvironment;
  before(async () => {
    env = await startTemporal();
  });
  after(async () => {
    await env?.teardown();
  });

  it('runs a workflow with an activity through a worker to completion', async () => {
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: 'smoke',
      workflowsPath: require.resolve('./fixtures/smoke-workflows'),
      activities: { shout: async (s: string) => s.toUpperCase() },
    });
    const result = await worker.runUntil(env.client.workflow.execute('smoke', { taskQueue: 'smoke', workflowId: `smoke-${Date.now()}`, args: ['world'] }));
    assert.equal(result, 'hello WORLD');
  });

  it("has this project's search attributes registered", async () => {
    const res = await env.connection.operatorService.listSearchAttributes({ namespace: 'default' });
    for (const key of SEARCH_ATTRIBUTES) assert.ok(res.customAttributes?.[key.name] !== undefined, `missing search attribute ${key.name}`);
  });
});

describe('real LiveKit server', () => {
  let lk: LiveKitServer;
  before(async () => {
    lk = await startTestLiveKit('foundation');
  });
  after(async () => {
    await dispose();
    await lk?.stop();
  });

  it('creates and lists a room through RoomServiceClient', async () => {
    const rs = roomService(lk);
    await rs.createRoom({ name: 'smoke-room' });
    const rooms = await rs.listRooms();
    assert.ok(rooms.some((r) => r.name === 'smoke-room'));
  });

  it('carries a published video track from one rtc-node participant to another', async () => {
    const a = new Room();
    const b = new Room();
    const src = new VideoSource(64, 64);
    const timer = setInterval(() => src.captureFrame(new VideoFrame(new Uint8Array((64 * 64 * 3) / 2).fill(100), 64, 64, VideoBufferType.I420)), 33);
    try {
      await a.connect(lk.url, await joinToken(lk, 'media-room', 'alice'), { autoSubscribe: true, dynacast: false });
      await a.localParticipant!.publishTrack(
        LocalVideoTrack.createVideoTrack('cam', src),
        new TrackPublishOptions({ source: TrackSource.SOURCE_CAMERA, simulcast: false }),
      );
      const firstFrame = new Promise<{ from: string; width: number }>((resolve) => {
        b.on(RoomEvent.TrackSubscribed, (track, _pub, participant) => {
          if (track.kind !== TrackKind.KIND_VIDEO) return;
          void (async () => {
            for await (const ev of new VideoStream(track)) {
              resolve({ from: participant.identity, width: ev.frame.width });
              break;
            }
          })();
        });
      });
      await b.connect(lk.url, await joinToken(lk, 'media-room', 'bob'), { autoSubscribe: true, dynacast: false });
      assert.ok(b.remoteParticipants.has('alice'), 'bob sees alice');
      const frame = await withTimeout(firstFrame, 15_000, 'first video frame');
      assert.deepEqual(frame, { from: 'alice', width: 64 });
    } finally {
      clearInterval(timer);
      await a.disconnect();
      await b.disconnect();
    }
  });
});
