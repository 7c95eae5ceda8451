// The reaper: run on a Temporal Schedule every few minutes. Finds Runway sessions this service
// created that no open session workflow owns, and ends them, so nothing keeps billing.
import * as wf from '@temporalio/workflow';
import type { ReaperActivities, SessionActivities } from '../activities';
import type { Orphan } from '../activities/reaper';

export interface ReapReport {
  inProgress: number;
  owned: number;
  notOurs: number;
  tooYoung: number;
  reaped: (Orphan & { finalStatus: string })[];
}

const { findOrphanedRunwaySessions } = wf.proxyActivities<ReaperActivities>({
  startToCloseTimeout: '5m',
  heartbeatTimeout: '30s',
  retry: { maximumAttempts: 3 },
});
const { endRunwaySession } = wf.proxyActivities<SessionActivities>({
  startToCloseTimeout: '1m',
  retry: { initialInterval: '1s', maximumInterval: '30s', maximumAttempts: 10 },
});

export async function reconcileRunwaySessions(opts: { graceSeconds?: number; lookbackHours?: number } = {}): Promise<ReapReport> {
  const scan = await findOrphanedRunwaySessions({ graceSeconds: opts.graceSeconds ?? 120, lookbackHours: opts.lookbackHours ?? 24 });
  const reaped: ReapReport['reaped'] = [];
  for (const orphan of scan.orphans) {
    const { finalStatus } = await endRunwaySession({ runwaySessionId: orphan.runwaySessionId, graceSeconds: 0 });
    reaped.push({ ...orphan, finalStatus });
    wf.metricMeter
      .createCounter('avatar_orphans_reaped', 'sessions', 'Runway sessions no workflow owned, ended by the reaper')
      .add(1, { reason: orphan.reason });
    wf.log.warn('reaped orphaned Runway session', { runwaySessionId: orphan.runwaySessionId, reason: orphan.reason, owner: orphan.owner });
  }
  return { inProgress: scan.inProgress, owned: scan.owned, notOurs: scan.notOurs, tooYoung: scan.tooYoung, reaped };
}
