// What this service asks of the customer's LiveKit server: presence checks, END_CALL delivery and
// removal of its own participants. Thin over RoomServiceClient; 404s mean "already gone".
import { DataPacket_Kind, ParticipantInfo_State, RoomServiceClient, TrackType, type ParticipantInfo } from 'livekit-server-sdk';

export interface AvatarPresence {
  joined: boolean;
  sid?: string;
  state?: 'joining' | 'joined' | 'active' | 'disconnected';
  publishingVideo: boolean;
  publishingAudio: boolean;
  room?: string;
  /** When the participant joined, by the LiveKit server's clock (ms since the epoch). */
  joinedAtMs?: number;
}

function isNotFound(err: unknown): boolean {
  return typeof err === 'object' && err !== null && ((err as { status?: number }).status === 404 || (err as { code?: string }).code === 'not_found');
}

const STATES: Record<number, AvatarPresence['state']> = {
  [ParticipantInfo_State.JOINING]: 'joining',
  [ParticipantInfo_State.JOINED]: 'joined',
  [ParticipantInfo_State.ACTIVE]: 'active',
  [ParticipantInfo_State.DISCONNECTED]: 'disconnected',
};

export class CustomerRooms {
  constructor(private readonly rooms: RoomServiceClient) {}

  async participant(roomName: string, identity: string): Promise<ParticipantInfo | undefined> {
    try {
      return await this.rooms.getParticipant(roomName, identity);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async presence(roomName: string, identity: string): Promise<AvatarPresence> {
    const p = await this.participant(roomName, identity);
    if (!p) return { joined: false, publishingVideo: false, publishingAudio: false };
    return {
      joined: true,
      sid: p.sid,
      state: STATES[p.state],
      publishingVideo: p.tracks.some((t) => t.type === TrackType.VIDEO && !t.muted),
      publishingAudio: p.tracks.some((t) => t.type === TrackType.AUDIO && !t.muted),
      room: roomName,
      joinedAtMs: p.joinedAtMs ? Number(p.joinedAtMs) : p.joinedAt ? Number(p.joinedAt) * 1000 : undefined,
    };
  }

  async roomExists(roomName: string): Promise<boolean> {
    const rooms = await this.rooms.listRooms([roomName]);
    return rooms.some((r) => r.name === roomName);
  }

  /** Delivers {"type":"END_CALL"} reliably to one participant; false if it is not in the room. */
  async sendEndCall(roomName: string, identity: string): Promise<boolean> {
    if (!(await this.participant(roomName, identity))) return false;
    const payload = new TextEncoder().encode(JSON.stringify({ type: 'END_CALL' }));
    await this.rooms.sendData(roomName, payload, DataPacket_Kind.RELIABLE, { destinationIdentities: [identity] });
    return true;
  }

  /** Removes a participant; true if it was there. */
  async remove(roomName: string, identity: string): Promise<boolean> {
    try {
      await this.rooms.removeParticipant(roomName, identity);
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }
}
