// Activities on the customer's LiveKit room: wait for the avatar, watch the live session, END_CALL,
// and remove this service's participants.
import { heartbeat, sleep } from '@temporalio/activity';
import type { CustomerRooms } from '../src/livekit/room-service';
import type { RunwayClient } from '../src/runway/client';
import { isRunwayError } from '../src/runway/errors';
import { asFailure, fail } from './failures';
import { heartbeatWhile } from './heartbeat';

export interface RoomActivityDeps {
  rooms: CustomerRooms;
  runway: RunwayClient;
  /** How often presence is checked while waiting for the avatar (tests shorten it). */
  presencePollMs?: number;
}

export type LiveEnd =
  | { reason: 'runway_ended'; status: string; failureCode?: string }
  | { reason: 'room_closed' }
  | { reason: 'avatar_left'; status: string; failureCode?: string };

export function createRoomActivities(deps: RoomActivityDeps) {
  const presencePollMs = deps.presencePollMs ?? 250;

  return {
    /** Direct mode: resolves once the avatar is in the customer's room publishing video; otherwise says what is missing. */
    async waitForAvatarInRoom(req: {
      roomName: string;
      avatarIdentity: string;
      timeoutSeconds: number;
      excludeSid?: string;
    }): Promise<{ joinedAfterMs: number; sid: string; joinedAtMs?: number }> {
      const started = Date.now();
      let last = { joined: false, publishingVideo: false } as Awaited<ReturnType<CustomerRooms['presence']>>;
      while (Date.now() - started < req.timeoutSeconds * 1000) {
        try {
          last = await heartbeatWhile(deps.rooms.presence(req.roomName, req.avatarIdentity), { joined: last.joined, publishingVideo: last.publishingVideo });
        } catch (err) {
          asFailure(err);
        }
        // During a renewal the old avatar holds the same identity: wait for a different participant sid.
        if (last.joined && last.publishingVideo && last.sid !== req.excludeSid)
          return { joinedAfterMs: Date.now() - started, sid: last.sid!, joinedAtMs: last.joinedAtMs };
        heartbeat({ joined: last.joined, publishingVideo: last.publishingVideo });
        await sleep(presencePollMs);
      }
      const what = last.joined
        ? `joined room ${req.roomName} but published no video within ${req.timeoutSeconds} s`
        : `never joined room ${req.roomName} within ${req.timeoutSeconds} s`;
      fail('avatar_not_joined', `avatar ${req.avatarIdentity} ${what}`, { details: [{ joined: last.joined, publishingVideo: last.publishingVideo }] });
    },

    /**
     * Direct mode, while live: a slow safety check (LiveKit's webhooks tell the workflow at once when
     * the avatar leaves; this covers deployments without them, and Runway-side ends). Each round is
     * two calls, Runway's status and the avatar's presence (the room is looked up only when the avatar
     * is gone). Returns when Runway ends the session, the avatar leaves, or the room is gone.
     * Heartbeats so cancellation (end requested) arrives promptly.
     */
    async monitorDirectSession(req: { runwaySessionId: string; roomName: string; avatarIdentity: string; intervalSeconds: number }): Promise<LiveEnd> {
      for (;;) {
        heartbeat();
        try {
          const s = await heartbeatWhile(deps.runway.getSession(req.runwaySessionId));
          if (s.status === 'COMPLETED' || s.status === 'FAILED' || s.status === 'CANCELLED') {
            return { reason: 'runway_ended', status: s.status, ...(s.status === 'FAILED' ? { failureCode: s.failureCode } : {}) };
          }
          const presence = await heartbeatWhile(deps.rooms.presence(req.roomName, req.avatarIdentity));
          if (!presence.joined) {
            if (!(await heartbeatWhile(deps.rooms.roomExists(req.roomName)))) return { reason: 'room_closed' };
            return { reason: 'avatar_left', status: s.status };
          }
        } catch (err) {
          if (isRunwayError(err) && err.kind === 'not_found') return { reason: 'runway_ended', status: 'NOT_FOUND' };
          if (!(isRunwayError(err) && err.retryable)) asFailure(err);
        }
        await sleep(req.intervalSeconds * 1000);
      }
    },

    /** Direct mode teardown step 1: a reliable END_CALL to the avatar, so Runway records a clean COMPLETED session. */
    async sendEndCallToAvatar(req: { roomName: string; avatarIdentity: string }): Promise<{ delivered: boolean }> {
      try {
        return { delivered: await deps.rooms.sendEndCall(req.roomName, req.avatarIdentity) };
      } catch (err) {
        return asFailure(err);
      }
    },

    /** Teardown: removes this service's participants from the customer's room; the room itself is left alone. */
    async removeServiceParticipants(req: { roomName: string; identities: string[] }): Promise<{ removed: string[] }> {
      const removed: string[] = [];
      try {
        for (const id of req.identities) if (await deps.rooms.remove(req.roomName, id)) removed.push(id);
      } catch (err) {
        asFailure(err);
      }
      return { removed };
    },
  };
}
