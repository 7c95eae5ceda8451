// The simulator's pion avatars (tools/light-avatars, built here through install-tools.sh
// --light-avatars): a direct-mode session goes live with a real LiveKit server, the avatar is in the
// customer's room publishing video, and it leaves when the session ends.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TrackType } from 'livekit-server-sdk';
import { sessionWorkflowId } from '../workflows/shared';
import type { SessionInput } from '../workflows/types';
import { lightAvatarsInfo } from '../src/runway-sim/pion-avatar';
import { participantsIn, startSessionStack, uniqueId, type SessionStack } from './helpers/session-stack';
import { roomService } from './helpers/livekit';
import { eventually, withTimeout } from './helpers/wait';

const ROOT = path.resolve(__dirname, '..');

describe('light avatars (pion) in the simulator', () => {
  let stack: SessionStack;
  before(async () => {
    // Builds tools/light-avatars into .tools/bin once (cached afterwards by a source stamp).
    execFileSync('bash', [path.join(ROOT, 'scripts', 'install-tools.sh'), '--light-avatars'], {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'inherit'],
      timeout: 900_000,
    });
    stack = await startSessionStack({ sim: { defaults: { provisioningMs: 100, avatarMedia: 'pion' } } });
  });
  after(async () => {
    await stack?.stop();
  });

  it('brings a direct session live with the avatar in the customer room, and the avatar leaves at the end', async () => {
    const t0 = Date.now();
    const conversationId = uniqueId('pion');
    const room = `room-${conversationId}`;
    const input: SessionInput = {
      conversationId,
      avatar: { type: 'runway-preset', presetId: 'cooking-teacher' },
      livekit: { roomName: room },
      mode: 'direct',
      timing: { readyDeadlineSeconds: 20, avatarJoinTimeoutSeconds: 15, monitorIntervalSeconds: 0.5, endCallGraceSeconds: 3, heartbeatTimeoutSeconds: 5 },
    };
    const { live } = await withTimeout(stack.sessions.startAndWaitLive(input), 30_000, 'session live');
    assert.equal(live.mode, 'direct');
    const avatar = live.avatarIdentity;
    const info = await roomService(stack.customer).getParticipant(room, avatar);
    assert.ok(
      info.tracks.some((t) => t.type === TrackType.VIDEO),
      'the avatar publishes video',
    );
    assert.ok(lightAvatarsInfo()?.pid, 'the light-avatars process runs');
    const runwayId = live.runwaySessionId;
    assert.equal(stack.sim.session(runwayId)?.status, 'RUNNING');

    await stack.sessions.endSession(conversationId);
    await withTimeout(stack.env.client.workflow.getHandle(sessionWorkflowId(conversationId)).result(), 30_000, 'session to end');
    await eventually(
      'avatar to leave the customer room',
      async () => ((await participantsIn(stack.customer, room).catch((): string[] => [])).includes(avatar) ? undefined : true),
      15_000,
    );
    const s = stack.sim.session(runwayId)!;
    assert.equal(s.status, 'COMPLETED');
    assert.equal(s.endedBy, 'END_CALL', 'the avatar got END_CALL through the light-avatars process');
    assert.deepEqual(
      stack.sim.orphans().map((o) => o.id),
      [],
    );
    assert.deepEqual(stack.sim.invariantViolations(), []);
    console.log(`light avatars: took ${Date.now() - t0} ms`);
  });
});
