// The transcript of one conversation, fetched after its session ended: a workflow of its own (started
// by the session, abandoned at its close), so waiting for Runway to finalize never delays the
// session's end, and a fetch that fails never changes the session's outcome. Its result is the
// transcript (encrypted by the payload codec like every payload, bounded by TRANSCRIPT_MAX_BYTES in
// the activity); the API and the typed client read it by the id the session's state names.
import { sessionActivities } from './session/activities';
import { DEFAULT_TIMING, type ConversationTranscript } from './types';

export const TRANSCRIPT_WORKFLOW_TYPE = 'avatarTranscript';

export interface TranscriptInput {
  conversationId: string;
  /** The conversation's Runway sessions, in creation order. */
  runwaySessionIds: string[];
  /** How long Runway gets to finalize every session's transcript before the answer says `incomplete`. */
  waitSeconds: number;
}

export async function avatarTranscript(input: TranscriptInput): Promise<ConversationTranscript> {
  const acts = sessionActivities(DEFAULT_TIMING);
  try {
    return await acts.fetchConversationTranscript({
      conversationId: input.conversationId,
      runwaySessionIds: input.runwaySessionIds,
      waitSeconds: input.waitSeconds,
    });
  } catch (err) {
    // Every attempt failed (workers lost mid-wait): say so rather than fail.
    const error = err instanceof Error ? err.message : String(err);
    return {
      conversationId: input.conversationId,
      status: 'incomplete',
      sessions: input.runwaySessionIds.map((runwaySessionId) => ({
        runwaySessionId,
        status: 'unavailable',
        recordingUrl: null,
        startedAt: null,
        endedAt: null,
        turns: 0,
        error,
      })),
      turns: [],
      truncated: false,
      fetchedAt: new Date(Date.now()).toISOString(),
    };
  }
}

/** The transcript workflow of a session: one per chain of runs (a restarted conversation gets its own). */
export function transcriptWorkflowId(conversationId: string, firstRunId: string): string {
  return `avatar-transcript-${conversationId}-${firstRunId}`;
}
