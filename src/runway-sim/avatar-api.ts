// The seam between the simulator's HTTP/state side (server.ts) and its LiveKit side (avatar.ts).
import type { SpeechStats } from './avatar-speech';

/** 'pion': light avatars in one shared Go process (tools/light-avatars), for hundreds of sessions. */
export type AvatarMedia = 'full' | 'light' | 'pion' | 'off';

export interface SimAvatarOptions {
  /** LiveKit ws(s) URL and a join token for the room the avatar joins. */
  url: string;
  token: string;
  roomName: string;
  /** The avatar participant's identity (Runway-room: `avatar-<sessionId>`; customer room: taken from the token). */
  identity: string;
  /** 'runway-room' after consume; 'customer-room' for integration:{type:'livekit'} (direct mode). */
  where: 'runway-room' | 'customer-room';
  /** 'full': 640x360@30 video + 48 kHz audio (a 440 Hz tone in Runway's room; in the customer's room what the agent streams, else silence); 'light': 64x64@5 video, no audio; 'pion': 16x16@1 VP8 from light-avatars; 'off' is never passed here. */
  media: Exclude<AvatarMedia, 'off'>;
  /** Direct mode: the customer's agent identity whose audio the avatar trusts. */
  agentIdentity?: string;
  /** Called once when a participant other than the avatar is in the room (Runway room: the session turns RUNNING). */
  onPeerJoined?: (identity: string) => void;
  /** Called once when any participant sends the reliable data message {"type":"END_CALL"}. */
  onEndCall?: (fromIdentity: string | undefined) => void;
  /** Called if the avatar loses the room for any reason other than stop(). */
  onDisconnected?: (reason: string) => void;
}

export interface SimAvatarStats {
  framesSent: number;
  audioFramesSent: number;
  /** Audio heard from others, in 10 ms frames whose RMS exceeds a small threshold. */
  audioFramesHeard: number;
  dataMessagesSent: number;
  /** Customer's room only: LiveKit's avatar protocol, what the agent streamed and how it played (avatar-speech.ts). */
  speech?: SpeechStats;
}

export interface SimAvatar {
  readonly identity: string;
  stats(): SimAvatarStats;
  /** Sends a client_event tool call as a JSON data message (the simulator does this once after it starts publishing). */
  sendClientEvent(name: string, args: Record<string, unknown>): Promise<void>;
  /** Sends one JSON data message on topic 'runway' (the simulator's transcript segments and tool calls). */
  sendData(msg: Record<string, unknown>): Promise<void>;
  /** Stops sending video frames while staying in the room (a stalled avatar). */
  freezeVideo(): void;
  /** Leaves the room and releases every track and source. Idempotent. */
  stop(): Promise<void>;
}

export type StartSimAvatar = (opts: SimAvatarOptions) => Promise<SimAvatar>;
