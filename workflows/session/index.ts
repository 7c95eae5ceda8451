// What happens in a session, top to bottom: admit → create a Runway session → wait until READY →
// bring the avatar into the customer's LiveKit room (direct: Runway joins it; relay: consume and relay)
// → live until the conversation is over, renewing ahead of Runway's cap (then continuing as new) →
// tear everything down, always; then the transcript is fetched on the side (workflows/transcript.ts).
// Each phase is a module beside this one; SessionRun owns the state.
import * as wf from '@temporalio/workflow';
import { ApplicationFailure } from '@temporalio/workflow';
import { DEFAULT_TIMING, type SessionInput, type SessionState } from '../types';
import { sessionActivities } from './activities';
import { settleBilling } from './billing';
import { bringUp } from './bring-up';
import { stayLive } from './live';
import { SessionRun, type CarriedSession } from './run';
import { teardown } from './teardown';
import { startTranscript } from './transcript';

export type { CarriedSession } from './run';

export async function avatarSession(input: SessionInput, carried?: CarriedSession): Promise<SessionState> {
  // Handlers first (an update or query may come while the input is checked), then the check: a first
  // run's input, the same way as at the API and the client. A continued run's was checked by the first
  // run: a deploy that drops a preset must not fail sessions that are live with it.
  const built = carried || readable(input) ? new SessionRun(input, carried) : undefined;
  if (!carried) await checkInput(input);
  const run = built!; // an input that passes the check is readable
  let rethrow: Error | undefined;
  try {
    const serving = carried?.current ?? (await bringUp(run));
    const end = await stayLive(run, serving);
    if (end.kind === 'renewed') {
      // A renewal hands the live session to a fresh run: nothing to tear down.
      await settleBilling(run); // the Runway sessions this run ended (a side step: never fails)
      await wf.condition(wf.allHandlersFinished);
      const continueAsNew = wf.makeContinueAsNewFunc<typeof avatarSession>({ typedSearchAttributes: run.nextRunAttributes() });
      return await continueAsNew(input, run.carry(end.next));
    }
    run.ended(end.outcome);
  } catch (err) {
    if (err instanceof wf.ContinueAsNew) throw err;
    rethrow = run.failed(err) as Error | undefined; // isCancellation() holds for Error subclasses only; ended by request, cancelled (rethrown after teardown), or a failure
  }
  await teardown(run); // never cancelled; each step on its own
  await settleBilling(run, { final: true }); // after teardown, never in its way
  run.finish();
  await startTranscript(run); // after teardown, never before: a side dependency
  await wf.condition(wf.allHandlersFinished);
  if (rethrow) throw rethrow;
  return run.result();
}

/**
 * Throws `invalid_input` naming every bad field (src/session-input.ts, in a local activity: no zod in
 * workflow code). The run uses the input as given: the check's only default (`mode: 'auto'`) is the run's too.
 */
async function checkInput(raw: SessionInput): Promise<void> {
  const check = await sessionActivities(DEFAULT_TIMING).checkSessionInput(raw);
  if (!check.ok) throw ApplicationFailure.create({ type: 'invalid_input', message: check.message, nonRetryable: true });
}

/** Whether SessionRun can be built from this input before it is checked (what its constructor reads). */
function readable(raw: SessionInput): boolean {
  const r = raw as Partial<SessionInput> | undefined;
  return typeof r?.conversationId === 'string' && typeof r.livekit === 'object' && r.livekit !== null && typeof r.livekit.roomName === 'string';
}
