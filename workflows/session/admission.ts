// A session's side of admission control (workflows/admission.ts holds the account's slots): ask for
// a slot before creating a Runway session, and give it back. A renewal asks for an extra slot (two
// Runway sessions overlap briefly), is granted before new sessions, and keeps its place in line
// across its retries. While waiting, the request is repeated now and then (the controller
// deduplicates by request id and re-sends a grant that was lost), at once after an outage, so a
// request or grant lost with a crash costs seconds, not the capacity wait; and the capacity wait
// counts only time in which the workflow could run (an outage of Temporal or the worker is not a fair
// wait). When Runway refuses the create a grant was for (`concurrency_limited`), the slot goes back
// with that news at once: the controller learns the limit and the next grant is the back-off.
import * as wf from '@temporalio/workflow';
import type { AdmissionRequest } from '../admission';
import { ADMISSION_WORKFLOW_ID, requestSlotSignal } from '../shared';
import { EndRequested, sessionFailure } from './failures';
import type { SessionRun } from './run';

/** The first repeat of a waiting request, then doubling up to the longest. */
const REPEAT_FIRST_MS = 5_000;
const REPEAT_MAX_MS = 20_000;
/**
 * A wait that ended this much later than planned means the workflow could not run meanwhile (Temporal
 * or the worker was down, or a workflow task timed out): requests and grants may have been lost with
 * it, so the request goes again at once and the repeats start short again; the time past the plan does
 * not count against the capacity wait. (Not less: on a loaded worker every timer fires a few seconds
 * late, and short repeats on every one of them only added load.)
 */
const LATE_MS = 8_000;

/** Capacity wait left in this bring-up (ms): `capacityWaitSeconds` minus the time waited while the workflow could run. */
export function capacityWaitLeft(run: SessionRun): number {
  return run.timing.capacityWaitSeconds * 1000 - run.capacityWaitedMs;
}

/**
 * Waits up to `ms` for `fn`; the time counts against the bring-up's capacity wait only as far as
 * planned (a timer that fires late fired after an outage). Returns whether `fn` held, and whether the
 * wait ended late.
 */
export async function capacityWait(run: SessionRun, fn: () => boolean, ms: number, counts = true): Promise<{ done: boolean; late: boolean }> {
  const from = Date.now();
  const done = await run.waitFor(fn, ms);
  const took = Date.now() - from;
  if (counts) run.capacityWaitedMs += Math.min(took, ms);
  return { done, late: took > ms + LATE_MS };
}

/**
 * Waits for a Runway session slot. The request goes out inside the workflow task (a local activity);
 * the grant comes back as a signal. A new session's wait is bounded by `capacityWaitSeconds` of time
 * in which it could run (outages do not count: see capacityWait); a renewal's by `deadline`.
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
  const left = () => (opts.deadline !== undefined ? opts.deadline - Date.now() : capacityWaitLeft(run));
  let repeatMs = REPEAT_FIRST_MS;
  for (;;) {
    if (run.grantedSlots.has(requestId) || run.ending) break; // granted in the first answer: no wait at all
    const wait = Math.min(repeatMs, left());
    if (wait <= 0) break;
    const { done, late } = await capacityWait(run, () => run.grantedSlots.has(requestId) || run.ending, wait, opts.deadline === undefined);
    if (done || left() <= 0) break;
    // Not granted yet: ask again (deduplicated by id; a holder's repeat gets its grant re-sent).
    await ask(run, admissionRequest(requestId, holder, renewal, false));
    repeatMs = late ? REPEAT_FIRST_MS : Math.min(REPEAT_MAX_MS, repeatMs * 2);
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
  const sent =
    !first &&
    (await wf
      .getExternalWorkflowHandle(ADMISSION_WORKFLOW_ID)
      .signal(requestSlotSignal, req)
      .then(
        () => true,
        () => false,
      ));
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
