// Ghost avatars (issue 14, item 7): a direct create whose answer was lost may still have made a Runway
// session, and that session's avatar joins the customer's room with the token it was given. LiveKit
// drops the participant that held an identity when another joins with it (duplicate identity), so a
// ghost under the live identity displaced the live avatar. Now a lost create uses its identity up (the
// next create gets another one), and the session removes an avatar that joins under a used-up identity
// (LiveKit's webhook tells it); the ghost's Runway session ends without its room, or by the reaper.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TrackType } from 'livekit-server-sdk';
import { startApiServer } from '../src/api/server';
import { freePort } from '../src/dev/net';
import { createLogger } from '../src/log';
import { sessionWorkflowId } from '../workflows/shared';
import type { SessionInput } from '../workflows/types';
import { roomService } from './helpers/livekit';
import { startSessionStack, uniqueId, type SessionStack } from './helpers/session-stack';
import { eventually } from './helpers/wait';

const ENDED = ['COMPLETED', 'CANCELLED', 'FAILED'];

describe('ghost avatars of lost creates', () => {
  let stack: SessionStack;
  let api: Awaited<ReturnType<typeof startApiServer>>;
  before(async () => {
    const port = await freePort();
    stack = await startSessionStack({ webhookPort: port, sim: { defaults: { provisioningMs: 100, avatarMedia: 'light' } } });
    api = await startApiServer({
      config: { apiToken: 'x'.repeat(32), apiPort: port, livekit: stack.config.livekit },
      sessions: stack.sessions,
      log: createLogger({ level: 'silent' }),
      port,
    });
  });
  after(async () => {
    await api?.close();
    await stack?.stop();
  });

  function input(): SessionInput {
    const conversationId = uniqueId('ghost');
    return {
      conversationId,
      avatar: { type: 'runway-preset', presetId: 'cooking-teacher' },
      livekit: { roomName: `room-${conversationId}` },
      mode: 'direct',
      timing: { readyDeadlineSeconds: 20, avatarJoinTimeoutSeconds: 15, monitorIntervalSeconds: 300, endCallGraceSeconds: 3, heartbeatTimeoutSeconds: 5 },
    };
  }

  async function avatarsIn(room: string): Promise<{ identity: string; sid: string; video: boolean }[]> {
    const ps = await roomService(stack.customer)
      .listParticipants(room)
      .catch(() => []);
    return ps
      .filter((p) => p.identity.startsWith('runway-avatar-'))
      .map((p) => ({ identity: p.identity, sid: p.sid, video: p.tracks.some((t) => t.type === TrackType.VIDEO && !t.muted) }));
  }

  it("a lost create's avatar joining after the live one is removed; the live avatar stays; the ghost's Runway session ends", async () => {
    const inp = input();
    const room = inp.livekit.roomName;
    // The first create is made at Runway but its answer is lost; that session provisions slowly, so its
    // avatar joins after the second session's avatar is live in the room.
    stack.sim.nextSessions([{ loseAnswer: true, provisioningMs: 4000 }]);
    await stack.sessions.startSession(inp);
    const live = await stack.sessions.waitLive(inp.conversationId);
    const liveAvatar = (await avatarsIn(room)).find((a) => a.identity === live.avatarIdentity);
    assert.ok(liveAvatar?.video, 'the live avatar publishes video');
    const ghost = stack.sim.sessions().find((s) => JSON.stringify(s.body).includes(room) && s.id !== live.runwaySessionId);
    assert.ok(ghost, 'the lost answer left a Runway session only Runway knows about');

    // The ghost's avatar joins (its token names the used-up identity), is removed, and its session ends.
    await eventually("the ghost's Runway session ended", async () => (ENDED.includes(stack.sim.session(ghost.id)!.status) ? true : undefined), 30_000, 100);
    // The live avatar was never displaced: the same participant, still publishing, its session running.
    assert.equal(stack.sim.session(live.runwaySessionId)?.status, 'RUNNING', 'the live Runway session still runs');
    await eventually(
      'only the live avatar in the room',
      async () => {
        const avatars = await avatarsIn(room);
        return avatars.length === 1 && avatars[0]!.sid === liveAvatar.sid ? avatars : undefined;
      },
      10_000,
    );
    assert.ok((await avatarsIn(room))[0]?.video);
    const state = await stack.sessions.getSession(inp.conversationId);
    assert.equal(state?.phase, 'live');
    assert.equal(state?.ambiguousCreates.length, 1);
    assert.ok(
      state?.events.some((e) => e.type === 'ghost_avatar'),
      'the session removed the ghost',
    );
    assert.equal(live.avatarIdentity, `runway-avatar-${inp.conversationId}~1`, 'the live avatar got an identity the lost create did not use');

    await stack.sessions.endSession(inp.conversationId);
    const handle = stack.env.client.workflow.getHandle(sessionWorkflowId(inp.conversationId));
    await handle.result();
    assert.ok(['COMPLETED', 'CANCELLED'].includes(stack.sim.session(live.runwaySessionId)!.status));
    await eventually('no avatar left in the room', async () => ((await avatarsIn(room)).length === 0 ? true : undefined), 10_000);
    assert.deepEqual(stack.sim.orphans(), []);
  });

  it("a renewal's lost create: its ghost is removed, the next avatar takes over under the next identity, the conversation goes on", async () => {
    const base = input();
    const inp = { ...base, timing: { ...base.timing, sessionCapSeconds: 14, renewalLeadSeconds: 7 } };
    const room = inp.livekit.roomName;
    // The first session serves; the renewal's first create is made but its answer is lost.
    stack.sim.nextSessions([{}, { loseAnswer: true, provisioningMs: 500 }]);
    const { live } = await stack.sessions.startAndWaitLive(inp);
    assert.equal(live.avatarIdentity, `runway-avatar-${inp.conversationId}`);
    const next = `runway-avatar-${inp.conversationId}~1`;
    const state = await eventually(
      'renewed under the next identity',
      async () => {
        const s = await stack.sessions.getSession(inp.conversationId);
        return (s?.renewals ?? 0) >= 1 && s?.avatarIdentity === next ? s : undefined;
      },
      60_000,
      200,
    );
    assert.equal(state.ambiguousCreates.length, 1);
    assert.equal(state.ambiguousCreates[0]!.avatarIdentity, live.avatarIdentity);
    const ghost = stack.sim.sessions().find((s) => JSON.stringify(s.body).includes(room) && !state.runwaySessionIds.includes(s.id));
    assert.ok(ghost, 'the lost answer left a Runway session only Runway knows about');
    await eventually("the ghost's Runway session ended", async () => (ENDED.includes(stack.sim.session(ghost.id)!.status) ? true : undefined), 30_000, 100);
    await eventually(
      'only the new avatar in the room, publishing',
      async () => {
        const avatars = await avatarsIn(room);
        return avatars.length === 1 && avatars[0]!.identity === next && avatars[0]!.video ? true : undefined;
      },
      20_000,
    );
    const now = await stack.sessions.getSession(inp.conversationId);
    assert.equal(now?.phase, 'live');
    await stack.sessions.endSession(inp.conversationId);
    await stack.env.client.workflow.getHandle(sessionWorkflowId(inp.conversationId)).result();
    await eventually('no avatar left in the room', async () => ((await avatarsIn(room)).length === 0 ? true : undefined), 10_000);
    assert.deepEqual(stack.sim.orphans(), []);
  });

  it("an avatar under the session's own identity that is not a lost create's is left alone", async () => {
    // A join webhook for the live avatar itself (and for any identity no lost create used) removes nothing.
    const inp = input();
    const { live } = await stack.sessions.startAndWaitLive(inp);
    assert.equal(live.avatarIdentity, `runway-avatar-${inp.conversationId}`);
    const [avatar] = await avatarsIn(inp.livekit.roomName);
    assert.ok(
      await stack.sessions.notifyAvatarRoomEvent(inp.conversationId, {
        event: 'participant_joined',
        roomName: inp.livekit.roomName,
        identity: live.avatarIdentity,
        participantSid: 'PA_someone_else',
      }),
    );
    // Then a signal that must be handled after the one above: the state query sees both.
    await stack.sessions.notifyAvatarRoomEvent(inp.conversationId, {
      event: 'participant_left',
      roomName: inp.livekit.roomName,
      identity: live.avatarIdentity,
      participantSid: 'PA_not_the_live_one',
    });
    await new Promise((r) => setTimeout(r, 1000));
    const state = await stack.sessions.getSession(inp.conversationId);
    assert.equal(state?.phase, 'live');
    assert.ok(!state?.events.some((e) => e.type === 'ghost_avatar'), JSON.stringify(state?.events));
    assert.equal((await avatarsIn(inp.livekit.roomName))[0]?.sid, avatar!.sid);
    await stack.sessions.endSession(inp.conversationId);
    await stack.env.client.workflow.getHandle(sessionWorkflowId(inp.conversationId)).result();
  });
});
