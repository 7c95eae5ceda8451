// The reaper's Temporal Schedule: every few minutes, `reconcileRunwaySessions` ends Runway sessions
// no open session workflow owns (lost create answers, terminated workflows). Created idempotently by
// every orchestration worker at start; operators see, pause or trigger it in the Temporal UI.
import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import { SESSION_TASK_QUEUE } from '../workflows/shared';

export const REAPER_SCHEDULE_ID = 'avatar-reaper';

export interface ReaperScheduleOptions {
  everySeconds?: number;
  /** Sessions younger than this are left alone (their workflow may not have recorded them yet). */
  graceSeconds?: number;
}

/** Creates the schedule unless it exists; returns whether it was created. */
export async function ensureReaperSchedule(client: Client, opts: ReaperScheduleOptions = {}): Promise<boolean> {
  try {
    await client.schedule.create({
      scheduleId: REAPER_SCHEDULE_ID,
      spec: { intervals: [{ every: `${opts.everySeconds ?? 300}s` }] },
      action: {
        type: 'startWorkflow',
        workflowType: 'reconcileRunwaySessions',
        taskQueue: SESSION_TASK_QUEUE,
        args: [{ graceSeconds: opts.graceSeconds ?? 120 }],
        workflowExecutionTimeout: '30m',
      },
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '10m' },
      state: { note: 'Ends Runway sessions that no open avatar session workflow owns.' },
    });
    return true;
  } catch (err) {
    if (err instanceof ScheduleAlreadyRunning) return false;
    throw err;
  }
}
