// Billing: what the conversation cost at Runway, in billed seconds (the final `duration` of every
// Runway session it created: failed attempts, expired READY sessions and renewals included). A
// session's duration is known only once it ended, so reading it is a side step: ending a session
// puts its id in `run.unbilled` (workflows/session/teardown.ts), and one local activity reads them
// all, batched, before a renewal's continue-as-new and after teardown. A read never fails the session
// nor skips anything: what it could not read is read again next time, and at the end it is reported
// unknown (`billedSecondsComplete: false`, flag `billing_incomplete`). See docs/cost.md.
import * as wf from '@temporalio/workflow';
import type { BilledSession } from '../../activities/runway';
import { failureMessage } from './failures';
import type { SessionRun } from './run';

/** Unknown ids kept in the state at most (a search through the events finds the rest). */
const MAX_UNKNOWN = 20;

/**
 * Reads the billed seconds of the Runway sessions ended since the last read and adds them to the
 * conversation's total. `final` (after teardown): whatever is still unread or still owned is unknown,
 * and the total is complete or not.
 */
export async function settleBilling(run: SessionRun, opts: { final?: boolean } = {}): Promise<void> {
  const ids = run.unbilled.splice(0);
  const later: { id: string; why: string }[] = [];
  if (ids.length) {
    let read: BilledSession[];
    try {
      ({ sessions: read } = await wf.CancellationScope.nonCancellable(() => run.acts.readBilledSeconds({ runwaySessionIds: ids })));
    } catch (err) {
      read = ids.map((id) => ({ id, later: failureMessage(err) }));
    }
    let seconds = 0;
    for (const r of read) {
      if ('seconds' in r) seconds += r.seconds;
      else later.push({ id: r.id, why: r.later });
    }
    run.billed(seconds, read.length - later.length);
  }
  if (!opts.final) {
    run.unbilled.push(...later.map((l) => l.id)); // read again at the next read
    return;
  }
  // Still owned at the end: teardown could not end it (the reaper will), so its duration is not final.
  const unknown = [...later, ...[...run.ownedRunwaySessionIds].map((id) => ({ id, why: 'not ended by teardown' }))];
  for (const u of unknown) run.event('billing_unknown', `billed seconds of Runway session ${u.id} unknown: ${u.why}`);
  if (unknown.length) run.state.billedSecondsUnknown = [...(run.state.billedSecondsUnknown ?? []), ...unknown.map((u) => u.id)].slice(-MAX_UNKNOWN);
  run.state.billedSecondsComplete = unknown.length === 0 && run.state.ambiguousCreates.length === 0;
  if (!run.state.billedSecondsComplete) run.flag('billing_incomplete');
  run.event(
    'billed',
    `billed ${run.state.billedSeconds} s of Runway time${run.state.billedSecondsComplete ? '' : ' (incomplete: see billedSecondsUnknown and ambiguousCreates)'}`,
  );
}
