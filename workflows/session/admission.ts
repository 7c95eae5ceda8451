// A session's side of admission control (workflows/admission.ts holds the account's slots): ask for
// a slot before creating a Runway session, and give it back. A renewal asks for an extra slot (two
// Runway sessions overlap briefly), is granted before new sessions, and keeps its place in line
// across its retries. While waiting, the request is repeated now and then (the controller
// deduplicates by request id and re-sends a grant that was lost), so a request or grant lost with a
// crash costs seconds, not the capacity deadline. When Runway refuses the create a grant was for
// (`concurrency_limited`), the slot goes back with that news: the controller learns the limit.
import * as wf from '@temporalio/workflow';
import type { AdmissionRequest } from '../admission';
import { ADMISSION_WORKFLOW_ID, requestSlotSignal } from '../shared';
import { EndRequested, sessionFailure } from './failures';
import type { SessionRun } from './run';

/** The first repeat of a waiting request, then doubling up to the longest. */
const REPEAT_FIRST_MS = 5_000;
const REPEAT_MAX_MS = 30_000;

/**
 * Waits for a Runway session slot. The request goes out inside the workflow task (a local activity);
 * the grant comes back as a signal.
 */
export async function acquireSlot(run: SessionRun, opts: { extra?: boolean; deadline?: number } = {}): Promise<void> {
  const slots = run.slotRequests;
  const holder = wf.workflowInfo().workflowId;
  const renewal = !!opts.extra;
  let requestId: string;
  if (slots.length >= (opts.extra ? 2 : 1)) {
    requestId = slots[opts.extra ? 1 : 0]!;
    if (opts.extra) {
      // A renewal's extra slot is kept across its retries: still waiting for that one, keep its place.
      if (run.grantedSlots.has(requestId)) return;
    } else {
      // Asked again with the session's slot held: the create it was for failed. Only Runway's refusal
      // (create.ts puts the session back in waiting_capacity) gives it back; other failures retry on it.
      if (run.state.phase !== 'waiting_capacity' || !run.grantedSlots.has(requestId)) return;
      run.grantedSlots.delete(requestId);
      run.event('waiting_capacity', 'Runway refused the create: slot given back, waiting for another');
      await ask(run, admissionRequest(requestId, holder, renewal, true));
    }
  } else {
    requestId = wf.uuid4();
    if (!opts.extra) {
      run.setPhase('waiting_capacity');
      run.event('waiting_capacity', 'waiting for a Runway session slot');
    }
    slots.push(requestId); // before asking: teardown releases it whatever happens next
    await ask(run, admissionRequest(requestId, holder, renewal, false), true);
  }
  const deadline = opts.deadline ?? (run.capacityDeadline ??= Date.now() + run.timing.capacityWaitSeconds * 1000);
  let repeatMs = REPEAT_FIRST_MS;
  for (;;) {
    if (run.grantedSlots.has(requestId) || run.ending) break; // granted in the first answer: no wait at all
    const wait = Math.min(repeatMs, deadline - Date.now());
    if (wait <= 0) break;
    if (await run.waitFor(() => run.grantedSlots.has(requestId) || run.ending, wait)) break;
    if (Date.now() >= deadline) break;
    // Not granted yet: ask again (deduplicated by id; a holder's repeat gets its grant re-sent).
    await ask(run, admissionRequest(requestId, holder, renewal, false));
    repeatMs = Math.min(REPEAT_MAX_MS, repeatMs * 2);
  }
  if (run.ending) throw new EndRequested();
  if (!run.grantedSlots.has(requestId)) throw sessionFailure('capacity_timeout', 'no Runway session slot became free in time (account limit reached)');
  run.event('slot_granted', 'Runway session slot granted');
}

/**
 * Sends a request to the controller. The first goes out inside the workflow task (a local activity,
 * update-with-start: one marker in history; when a slot is free the answer is the grant, and the
 * create is scheduled in the same workflow task); repeats go as
 * signals from this workflow (commands: they hold no workflow task open, so sessions that wait while
 * Temporal is slow never crowd the worker's workflow task slots), falling back to the local activity
 * when no controller runs.
 */
async function ask(run: SessionRun, req: AdmissionRequest, first = false): Promise<void> {
  const sent = !first && (await wf.getExternalWorkflowHandle(ADMISSION_WORKFLOW_ID).signal(requestSlotSignal, req).then(() => true, () => false));
  if (sent) return;
  const { granted } = await run.acts.requestAdmission({ ...req, ...(first ? { now: true } : {}) });
  if (granted) run.grantedSlots.add(req.requestId);
}

function admissionRequest(requestId: string, holder: string, renewal: boolean, refused: boolean): AdmissionRequest {
  return { requestId, holder, at: new Date(Date.now()).toISOString(), ...(renewal ? { renewal } : {}), ...(refused ? { refused } : {}) };
}

/** Gives back a renewal's extra slot; awaited so it is done before the run continues as new. */
export async function releaseExtraSlot(run: SessionRun): Promise<void> {
  const releases: Promise<unknown>[] = [];
  while (run.slotRequests.length > 1) {
    const requestId = run.slotRequests.pop()!;
    releases.push(wf.CancellationScope.nonCancellable(() => run.acts.releaseAdmission({ requestId })).catch(() => undefined));
  }
  await Promise.all(releases);
}
