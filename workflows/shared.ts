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

/** Every custom search attribute this project uses; the dev stack and test servers register them. */
export const SEARCH_ATTRIBUTES = [PhaseKey, ModeKey, RunwaySessionIdKey, LiveKitRoomKey, ConversationIdKey, EndReasonKey];
