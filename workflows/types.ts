// The session's public data model: input, state, answers. Shared by workflow, activities and clients.

export type SessionMode = 'auto' | 'direct' | 'relay';
export type BridgeMode = 'direct' | 'relay';

/** The phases of a session, in lifecycle order (the API, the CLI and the search attribute use these). */
export const SESSION_PHASES = [
  'waiting_capacity',
  'creating',
  'waiting_ready',
  'consuming',
  'bridging',
  'live',
  'tearing_down',
  'completed',
  'failed',
] as const;
export type SessionPhase = (typeof SESSION_PHASES)[number];

export const TERMINAL_PHASES: readonly SessionPhase[] = ['completed', 'failed'];

export type EndReason = 'ended_by_request' | 'max_duration' | 'runway_ended' | 'room_closed' | 'failed' | 'cancelled';

export type AvatarSpec = { type: 'runway-preset'; presetId: string } | { type: 'custom'; avatarId: string };

export interface ToolSpec {
  type: 'client_event' | 'backend_rpc';
  name: string;
  description: string;
  parameters?: unknown[];
  timeoutSeconds?: number;
}

export interface SessionInput {
  conversationId: string;
  avatar: AvatarSpec;
  livekit: {
    roomName: string;
    /** The customer's own agent: the avatar publishes on its behalf (lk.publish_on_behalf). */
    agentIdentity?: string;
    /** Relay mode: identities whose microphones Runway's character hears (default: standard participants). */
    listenTo?: string[];
    /** The end user: when LiveKit reports them leaving the room (webhook), the session ends. */
    endUserIdentity?: string;
  };
  mode?: SessionMode;
  /** The conversation's limit in seconds; may exceed one Runway session. */
  maxDurationSeconds?: number;
  personality?: string;
  startScript?: string;
  tools?: ToolSpec[];
  /** Operational knobs (tests and operators); defaults suit production. */
  timing?: Partial<SessionTiming>;
}

export interface SessionTiming {
  /** How long a Runway session may take to become READY (queued sessions can take minutes). */
  readyDeadlineSeconds: number;
  /** Direct mode: how long the avatar has to join the customer's room and publish video. */
  avatarJoinTimeoutSeconds: number;
  /** How many Runway sessions one conversation may create before it gives up (expiry, failed joins). */
  maxCreateAttempts: number;
  /**
   * Direct mode: how often the live safety check reads Runway's status and the avatar's presence (two
   * calls). LiveKit's webhooks report the avatar leaving at once; this covers deployments without them.
   */
  monitorIntervalSeconds: number;
  /** Teardown: how long to wait for END_CALL to complete the session before cancelling it. */
  endCallGraceSeconds: number;
  /** Runway cuts a session at about this many seconds of runtime; direct mode renews before it (0: never). */
  sessionCapSeconds: number;
  /** Minimum lead of a renewal before the cap (it grows with measured provisioning times). */
  renewalLeadSeconds: number;
  /** How long a session may wait for a Runway session slot (admission control) before it fails. */
  capacityWaitSeconds: number;
  /** Heartbeat timeout of long activities: how fast a dead worker's work moves to another worker. */
  heartbeatTimeoutSeconds: number;
  /** After the session: how long Runway gets to finalize the transcript before it is stored `incomplete`. */
  transcriptWaitSeconds: number;
}

export const DEFAULT_TIMING: SessionTiming = {
  readyDeadlineSeconds: 300,
  avatarJoinTimeoutSeconds: 30,
  maxCreateAttempts: 3,
  monitorIntervalSeconds: 60,
  endCallGraceSeconds: 5,
  heartbeatTimeoutSeconds: 15,
  capacityWaitSeconds: 600,
  sessionCapSeconds: 300,
  renewalLeadSeconds: 20,
  transcriptWaitSeconds: 300,
};

export interface SessionError {
  code: string;
  message: string;
}

export interface SessionEvent {
  at: string;
  type: string;
  message: string;
}

/**
 * A create that may have made a Runway session nobody knows the id of. The reaper matches Runway
 * sessions created between `at` (the request was about to be sent) and `until` (its failure was
 * known), with a small margin for clock skew.
 */
export interface AmbiguousCreate {
  at: string;
  until?: string;
  avatar: AvatarSpec;
  /** Direct mode: the identity its avatar would join the customer's room with (a ghost if it does). */
  avatarIdentity?: string;
}

export interface SessionState {
  conversationId: string;
  phase: SessionPhase;
  requestedMode: SessionMode;
  /** The mode actually bridging ('direct' or 'relay'), once chosen. */
  mode?: BridgeMode;
  runwaySessionId?: string;
  /** Every Runway session this conversation created, in order (ids only). */
  runwaySessionIds: string[];
  roomName: string;
  avatarIdentity?: string;
  endUserIdentity?: string;
  phaseTimes: Partial<Record<SessionPhase, string>>;
  endReason?: EndReason;
  error?: SessionError;
  /** Creates whose answer was lost: a session may exist that only the reaper can find. */
  ambiguousCreates: AmbiguousCreate[];
  /** Direct mode: how many avatar identities lost creates used up (see `directAvatarIdentity`). */
  avatarGeneration?: number;
  /** How many times the Runway session was renewed ahead of its runtime cap. */
  renewals?: number;
  /**
   * Billed Runway seconds so far: the sum of the final `duration` of every Runway session this
   * conversation created that has ended and been read (failed attempts, expired READY sessions and
   * renewals included). See docs/cost.md.
   */
  billedSeconds: number;
  /**
   * True when billedSeconds is the conversation's whole cost: every Runway session it created has
   * ended and its duration was read, and no create was ambiguous. False while it runs, and at the end
   * when a read failed (those ids are in billedSecondsUnknown) or a create's answer was lost.
   */
  billedSecondsComplete: boolean;
  /** Ended Runway sessions whose final duration could not be read (not in billedSeconds). */
  billedSecondsUnknown?: string[];
  /**
   * Set once the session ended: where its transcript is fetched (a workflow of its own, so the fetch
   * never delays or fails the session; GET /v1/sessions/:id/transcript reads it).
   */
  transcript?: { workflowId: string };
  events: SessionEvent[];
}

/** One turn of a conversation's transcript, from the Runway session it was said in. */
export interface TranscriptTurn {
  runwaySessionId: string;
  role: 'user' | 'assistant';
  /** null for tool-only turns. */
  content: string | null;
  timestamp: string | null;
  toolCalls?: { name: string; arguments: Record<string, unknown>; id?: string }[];
  toolResults?: { name: string; id?: string; durationMs?: number | null; error?: string | null; result?: unknown }[];
}

/** What Runway said about one of the conversation's Runway sessions. */
export interface TranscriptSession {
  runwaySessionId: string;
  /** Runway's conversation status; `unavailable` when it could not be read. */
  status: 'in_progress' | 'ended' | 'failed' | 'unavailable';
  /** Expires within 24-48 h (Runway's word): fetch the conversation again for a fresh one. */
  recordingUrl: string | null;
  startedAt: string | null;
  endedAt: string | null;
  turns: number;
  error?: string;
}

/**
 * A conversation's transcript: every Runway session it created, in order, their turns stitched into
 * one list. `incomplete`: Runway had not finalized (or would not give) every session's transcript
 * within the wait; `truncated`: turns past the size bound (TRANSCRIPT_MAX_BYTES) were left out.
 */
export interface ConversationTranscript {
  conversationId: string;
  status: 'complete' | 'incomplete';
  sessions: TranscriptSession[];
  turns: TranscriptTurn[];
  truncated: boolean;
  fetchedAt: string;
}

/** What a caller needs to join the customer's room and talk to the avatar. */
export interface LiveInfo {
  conversationId: string;
  roomName: string;
  mode: BridgeMode;
  runwaySessionId: string;
  /** The participant that publishes the avatar's video and audio in the customer's room. */
  avatarIdentity: string;
  /** Direct mode: a LiveKit agent sends its TTS audio to this identity on `lk.audio_stream`. */
  audioStreamTopic?: string;
}

/** Runway client error kinds a retry cannot fix (activity failure types; see src/runway/errors.ts). */
export const NON_RETRYABLE_KINDS = [
  'invalid_request',
  'integration_unsupported',
  'unauthorized',
  'not_found',
  'ambiguous',
  'session_expired',
  'already_consumed',
  'invalid_response',
  'concurrency_limited',
] as const;
