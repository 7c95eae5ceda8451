// After teardown: the conversation's transcript is fetched by a workflow of its own (workflows/transcript.ts),
// started here and abandoned when this one closes. A side dependency: a start that fails is an event,
// and the session's outcome stays what it was.
import * as wf from '@temporalio/workflow';
import { TRANSCRIPT_WORKFLOW_TYPE, transcriptWorkflowId, type TranscriptInput } from '../transcript';
import { failureMessage } from './failures';
import type { SessionRun } from './run';

/**
 * Starts the transcript fetch for every Runway session the conversation created. A continued run's
 * first run id is the chain's, so a restarted conversation's transcript has an id of its own.
 */
export async function startTranscript(run: SessionRun): Promise<void> {
  const runwaySessionIds = run.state.runwaySessionIds;
  if (!runwaySessionIds.length) return;
  const workflowId = transcriptWorkflowId(run.input.conversationId, wf.workflowInfo().firstExecutionRunId);
  try {
    await wf.CancellationScope.nonCancellable(() =>
      wf.startChild(TRANSCRIPT_WORKFLOW_TYPE, {
        workflowId,
        args: [{ conversationId: run.input.conversationId, runwaySessionIds, waitSeconds: run.timing.transcriptWaitSeconds } satisfies TranscriptInput],
        parentClosePolicy: wf.ParentClosePolicy.ABANDON,
        workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      }),
    );
    run.state.transcript = { workflowId };
  } catch (err) {
    run.event('transcript_not_started', `the transcript fetch could not start: ${failureMessage(err)}`);
  }
}
