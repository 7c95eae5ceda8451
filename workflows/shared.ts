// Names and message definitions shared by the workflow, its clients and the dev stack.
// Deterministic code only: this module is bundled into the workflow sandbox.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const SESSION_TASK_QUEUE = 'avatar-sessions';
export const MEDIA_TASK_QUEUE = 'avatar-media';
export const SESSION_WORKFLOW_TYPE = 'avatarSession';

export const PhaseKey = defineSearchAttributeKey('AvatarPhase', SearchAttributeType.KEYWORD);
export const ModeKey = defineSearchAttributeKey('AvatarMode', SearchAttributeType.KEYWORD);
export const RunwaySessionIdKey = defineSearchAttributeKey('RunwaySessionId', SearchAttributeType.KEYWORD);
export const LiveKitRoomKey = defineSearchAttributeKey('LiveKitRoom', SearchAttributeType.KEYWORD);
export const ConversationIdKey = defineSearchAttributeKey('ConversationId', SearchAttributeType.KEYWORD);
export const EndReasonKey = defineSearchAttributeKey('AvatarEndReason', SearchAttributeType.KEYWORD);
/** The conversation's current and previous Runway session ids (the reaper finds owners by it; all of them are in the state). */
export const RunwaySessionIdsKey = defineSearchAttributeKey('RunwaySessionIds', SearchAttributeType.KEYWORD_LIST);
/** Markers for operators and the reaper, e.g. 'ambiguous_create', 'fallback_to_relay'. */
export const FlagsKey = defineSearchAttributeKey('AvatarFlags', SearchAttributeType.KEYWORD_LIST);
/** Billed Runway seconds of the conversation so far (every Runway session it created that has ended; docs/cost.md). */
export const BilledSecondsKey = defineSearchAttributeKey('RunwayBilledSeconds', SearchAttributeType.INT);

/** Every custom search attribute this project uses; the dev stack and test servers register them. */
export const SEARCH_ATTRIBUTES = [
  PhaseKey,
  ModeKey,
  RunwaySessionIdKey,
  LiveKitRoomKey,
  ConversationIdKey,
  EndReasonKey,
  RunwaySessionIdsKey,
  FlagsKey,
  BilledSecondsKey,
];

import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { LiveInfo, SessionState } from './types';

/** Ends the session (idempotent). The argument is a free-text reason kept in the session's events. */
export const endSignal = defineSignal<[reason?: string]>('end');
/** The session's current state. */
export const stateQuery = defineQuery<SessionState>('state');
/** Resolves when the session is live (or fails with the session's error); use with update-with-start. */
export const waitLiveUpdate = defineUpdate<LiveInfo, []>('waitLive');

/** One workflow per conversation: the id is derived from the conversation id. */
export function sessionWorkflowId(conversationId: string): string {
  return `avatar-session-${conversationId}`;
}

/** Participant identities this service uses in the customer's room. */
export function bridgeIdentity(conversationId: string): string {
  return `avatar-bridge-${conversationId}`;
}
/**
 * The identity Runway's avatar joins the customer's room with (direct mode). It stays the same across
 * renewals (an agent keeps sending its audio to it); it changes only after a create whose answer was
 * lost used it (`generation` counts those), because that create's ghost avatar may join with it at
 * any moment, and LiveKit then drops whichever participant held it before (duplicate identity).
 */
export function directAvatarIdentity(conversationId: string, generation = 0): string {
  return generation > 0 ? `runway-avatar-${conversationId}~${generation}` : `runway-avatar-${conversationId}`;
}

/**
 * Sent by the media relay activity once the avatar is published in the customer's room (and when a
 * relay is adopted after a renewal), with the task queue of the media worker that holds the relay.
 */
export const relayBridgedSignal = defineSignal<[info: { runwaySessionId: string; bridgedAt: string; workerQueue?: string }]>('relayBridged');

/**
 * What LiveKit's webhooks told the API about the direct avatar in the session's room (the API signals
 * the session; no polling needed to notice the avatar leave or stop publishing video).
 */
export interface AvatarRoomEvent {
  /** `participant_joined`: the session removes an avatar that is not its own (a lost create's ghost). */
  event: 'participant_left' | 'video_unpublished' | 'participant_joined';
  roomName: string;
  identity: string;
  participantSid: string;
}
export const avatarRoomEventSignal = defineSignal<[AvatarRoomEvent]>('avatarRoomEvent');

/** The conversation a service participant identity belongs to (direct avatar or relay bridge). */
export function conversationOfIdentity(identity: string): string | undefined {
  const m = /^(?:runway-avatar|avatar-bridge)-(.+?)(?:~\d+)?$/.exec(identity);
  return m?.[1];
}

/** A media worker's own task queue (renewal routes the relay's next activities to the worker holding it). */
export function mediaWorkerQueue(workerId: string): string {
  return `${MEDIA_TASK_QUEUE}@${workerId}`;
}

// ---- Admission control (workflows/admission.ts) ------------------------------------------------------
export const ADMISSION_WORKFLOW_ID = 'avatar-admission';
/**
 * The admission controller's own task queue, polled by a worker of its own in the orchestration
 * process: its workflow tasks never queue behind a burst of session tasks (after a restart every
 * session replays at once; the controller's tasks timed out behind them, grants minutes late).
 */
export const ADMISSION_TASK_QUEUE = 'avatar-admission';
export const ADMISSION_WORKFLOW_TYPE = 'admissionController';

export interface SlotRequest {
  requestId: string;
  /** The session workflow id the grant is signalled to. */
  holder: string;
  at: string;
}
export interface AdmissionState {
  limit: number;
  limitSource: string;
  holders: (SlotRequest & { grantedAt: string })[];
  queue: SlotRequest[];
  granted: number;
}
/** Asks for a slot (signal-with-start from the session's local activity; deduplicated by request id). */
export const requestSlotSignal = defineSignal<[SlotRequest]>('requestSlot');
/**
 * Asks for a slot and answers at once: `granted` when a slot was free and nobody waited ahead (no
 * grant signal follows), else the request is queued like the signal's and its grant comes as a signal.
 */
export const requestSlotNowUpdate = defineUpdate<{ granted: boolean }, [SlotRequest]>('requestSlotNow');
export const releaseSlotSignal = defineSignal<[{ requestId: string }]>('releaseSlot');
export const slotGrantedSignal = defineSignal<[{ requestId: string }]>('slotGranted');
export const admissionStateQuery = defineQuery<AdmissionState>('admissionState');
