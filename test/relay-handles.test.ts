// rtc-node's `trying to drop an invalid handle` (issue 14, item 9): a native handle released twice,
// the second time from a garbage-collection finalizer, is an uncaught exception that ends the whole
// process, every relay and avatar in it. The child reproduces it (and dies of it without the guard);
// with src/media/rtc-guard.ts it is logged and survived, and nothing else changes. Then the relay's
// and the simulated avatar's own releases are raced (a failed switch with stop(), stop() twice, an
// avatar that leaves while its room is torn down) with GC forced: no invalid handle at all.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { dispose } from '@livekit/rtc-node';
import { MediaRelay } from '../src/media/relay';
import { invalidHandleErrors } from '../src/media/rtc-guard';
import { startSimAvatar } from '../src/runway-sim/avatar';
import { joinToken, roomService, startTestLiveKit, type LiveKitServer } from './helpers/livekit';
import { viewer } from './helpers/viewer';
import { eventually } from './helpers/wait';

const CHILD = path.join(__dirname, 'fixtures', 'invalid-handle-child.ts');

function runChild(guard: boolean): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', CHILD], {
      env: { ...process.env, GUARD: guard ? '1' : '0', NODE_ENV: 'production' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('rtc-node invalid handles', () => {
  it('a handle released twice kills an unguarded process; the guard logs it and the process goes on', async () => {
    const bare = await runChild(false);
    assert.notEqual(bare.code, 0, 'the unguarded process died');
    assert.match(bare.stderr, /trying to drop an invalid handle/);
    assert.doesNotMatch(bare.stdout, /survived/);

    const guarded = await runChild(true);
    assert.equal(guarded.code, 0, guarded.stderr);
    assert.match(guarded.stdout, /survived/);
    assert.match(guarded.stderr, /dropped a native handle that was already released/);
  });

  describe('the relay and the simulated avatar release each handle once', () => {
    let runway: LiveKitServer;
    let customer: LiveKitServer;
    before(async () => {
      [runway, customer] = await Promise.all([startTestLiveKit('handles-runway'), startTestLiveKit('handles-customer')]);
    });
    after(async () => {
      await dispose();
      await Promise.all([runway?.stop(), customer?.stop()]);
    });

    it('switch failures, stops and lost rooms raced, GC forced: no invalid handle', async () => {
      const gc = (globalThis as { gc?: () => void }).gc;
      const avatarIn = async (room: string, k: number) =>
        startSimAvatar({
          url: runway.url,
          token: await joinToken(runway, room, `worker:avatar-${k}`),
          roomName: room,
          identity: `worker:avatar-${k}`,
          where: 'runway-room',
          media: 'light',
        });
      for (let round = 0; round < 3; round++) {
        const rooms = [`h${round}-a`, `h${round}-b`, `h${round}-c`];
        const a = await avatarIn(rooms[0]!, 0);
        const relay = new MediaRelay({
          runway: { url: runway.url, token: await joinToken(runway, rooms[0]!, 'client'), sessionId: 'a' },
          customer: { url: customer.url, token: await joinToken(customer, `conv-h${round}`, 'bridge') },
          stallSeconds: 60,
        });
        await relay.start();
        const user = await viewer(customer, `conv-h${round}`);
        await eventually('the viewer gets the avatar', () => (user.counters.length > 0 ? true : undefined), 30_000);
        // A switch that succeeds (the old avatar gets END_CALL), then one to a room with no avatar that
        // is cut short by stop(), while the Runway room of the active avatar is deleted under it.
        const b = await avatarIn(rooms[1]!, 1);
        await relay.switchSource({ url: runway.url, token: await joinToken(runway, rooms[1]!, 'client'), sessionId: 'b' }, { timeoutMs: 20_000 });
        const failing = relay.switchSource({ url: runway.url, token: await joinToken(runway, rooms[2]!, 'client'), sessionId: 'c' }, { timeoutMs: 1500 });
        failing.catch(() => undefined);
        if (round === 1)
          await roomService(runway)
            .deleteRoom(rooms[1]!)
            .catch(() => undefined);
        await new Promise((r) => setTimeout(r, round === 2 ? 2000 : 300));
        await Promise.all([relay.stop({ endCall: true }), relay.stop({ endCall: false }), failing.catch(() => undefined)]);
        await Promise.all([a.stop(), a.stop(), b.stop(), b.stop()]);
        await user.close();
      }
      if (gc)
        for (let i = 0; i < 10; i++) {
          gc();
          await new Promise((r) => setTimeout(r, 50));
        }
      assert.equal(invalidHandleErrors(), 0, 'no handle was released twice');
    });
  });
});
