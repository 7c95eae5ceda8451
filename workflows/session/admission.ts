// A session's side of admission control (workflows/admission.ts holds the account's slots): ask for
// a slot before creating a Runway session, and give it back. A renewal asks for an extra slot (two
// Runway sessions overlap briefly) and keeps its place in line across its retries.
import * as wf from '@temporalio/workflow';
import { EndRequested, sessionFailure } from './failures';
import type { SessionRun } from './run';

/**
 * Waits for a Runway session slot, first come first served. The request goes out inside the workflow
 * task (a local activity); the grant comes back as a signal.
 */
export async function acquireSlot(run: SessionRun, opts: { extra?: boolean; deadline?: number } = {}): Promise<void> {
  const slots = run.slotRequests;
  let requestId: string;
  if (slots.length >= (opts.extra ? 2 : 1)) {
    // A renewal's extra slot is kept across its retries: still waiting for that one, keep its place.
    if (!opts.extra || run.grantedSlots.has(slots[1]!)) return;
    requestId = slots[1]!;
  } else {
    requestId = wf.uuid4();
    if (!opts.extra) run.setPhase('waiting_capacity');
    slots.push(requestId); // before asking: teardown releases it whatever happens next
    await run.acts.requestAdmission({ requestId, holder: wf.workflowInfo().workflowId, at: new Date(Date.now()).toISOString() });
  }
  const deadline = opts.deadline ?? (run.capacityDeadline ??= Date.now() + run.timing.capacityWaitSeconds * 1000);
  const granted = await run.waitFor(() => run.grantedSlots.has(requestId) || run.ending, Math.max(1, deadline - Date.now()));
  if (run.ending) throw new EndRequested();
  if (!granted) throw sessionFailure('capacity_timeout', 'no Runway session slot became free in time (account limit reached)');
  run.event('slot_granted', 'Runway session slot granted');
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
