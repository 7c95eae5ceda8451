// Admission control: one long-lived workflow holds the account's Runway session slots and grants them
// first come, first served. Session workflows ask through a signal (sent by an activity with
// signal-with-start), get their grant as a signal, and release in teardown. Holders whose workflow
// closed without releasing (terminated) are found by a periodic check and their slots freed.
import * as wf from '@temporalio/workflow';
import type { AdmissionActivities } from '../activities';
import {
  admissionStateQuery, releaseSlotSignal, requestSlotSignal, slotGrantedSignal,
  type AdmissionState, type SlotRequest,
} from './shared';

const { getSessionLimit, closedWorkflows } = wf.proxyActivities<AdmissionActivities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '1s', maximumInterval: '30s', maximumAttempts: 5 },
});

/** Signals sent per workflow task (the server bounds a workflow's outstanding external signals). */
const MAX_GRANTS_PER_TASK = 200;

export interface AdmissionOptions {
  /** How often holders are checked for closed workflows, and the limit refreshed. */
  checkIntervalSeconds?: number;
}

export async function admissionController(opts: AdmissionOptions = {}, carried?: AdmissionState): Promise<void> {
  const state: AdmissionState = carried ?? { limit: 0, holders: [], queue: [], granted: 0, limitSource: 'unknown' };
  const checkMs = (opts.checkIntervalSeconds ?? 30) * 1000;
  let dirty = true;

  wf.setHandler(admissionStateQuery, () => state);
  wf.setHandler(requestSlotSignal, (req: SlotRequest) => {
    if (state.holders.some((h) => h.requestId === req.requestId) || state.queue.some((q) => q.requestId === req.requestId)) return;
    state.queue.push(req);
    dirty = true;
  });
  // Grants being signalled right now: a release for one of them must not be lost when it lands.
  const granting = new Set<string>();
  const releasedWhileGranting = new Set<string>();
  wf.setHandler(releaseSlotSignal, ({ requestId }) => {
    state.holders = state.holders.filter((h) => h.requestId !== requestId);
    state.queue = state.queue.filter((q) => q.requestId !== requestId);
    if (granting.has(requestId)) releasedWhileGranting.add(requestId);
    dirty = true;
  });

  const refreshLimit = async () => {
    const { limit, source } = await getSessionLimit();
    state.limit = limit;
    state.limitSource = source;
  };
  if (state.limit === 0) await refreshLimit();

  let lastCheck = Date.now();
  for (;;) {
    // Grant in arrival order while capacity lasts. All grants that fit go out together, in one
    // workflow task (one signal per task capped the rate at ~10 grants/s under load).
    if (wf.patched('admission-batch-grants')) {
      while (state.queue.length && state.holders.length < state.limit) {
        const batch = state.queue.splice(0, Math.min(MAX_GRANTS_PER_TASK, state.limit - state.holders.length));
        for (const r of batch) granting.add(r.requestId);
        const sent = await Promise.allSettled(
          batch.map((r) => wf.getExternalWorkflowHandle(r.holder).signal(slotGrantedSignal, { requestId: r.requestId })),
        );
        batch.forEach((r, i) => {
          granting.delete(r.requestId);
          // A failed signal: the requester is gone, its request is dropped.
          if (sent[i]!.status === 'rejected' || releasedWhileGranting.delete(r.requestId)) return;
          state.holders.push({ ...r, grantedAt: new Date(Date.now()).toISOString() });
          state.granted++;
        });
      }
    } else {
      // Runs started before batching grant one per workflow task (kept for replay).
      while (state.queue.length && state.holders.length < state.limit) {
        const next = state.queue.shift()!;
        try {
          await wf.getExternalWorkflowHandle(next.holder).signal(slotGrantedSignal, { requestId: next.requestId });
          state.holders.push({ ...next, grantedAt: new Date(Date.now()).toISOString() });
          state.granted++;
        } catch {
          // The requester is gone; its request is dropped.
        }
      }
    }
    dirty = false;
    await wf.condition(() => dirty, Math.max(1000, checkMs - (Date.now() - lastCheck)));
    if (Date.now() - lastCheck >= checkMs) {
      lastCheck = Date.now();
      const ids = [...new Set([...state.holders, ...state.queue].map((h) => h.holder))];
      if (ids.length) {
        const closed = new Set(await closedWorkflows({ workflowIds: ids }));
        const before = state.holders.length + state.queue.length;
        state.holders = state.holders.filter((h) => !closed.has(h.holder));
        state.queue = state.queue.filter((q) => !closed.has(q.holder));
        if (state.holders.length + state.queue.length !== before) wf.log.warn('released slots of closed workflows', { closed: [...closed] });
      }
      await refreshLimit();
      dirty = true;
    }
    if (wf.workflowInfo().continueAsNewSuggested || wf.workflowInfo().historyLength > 2000) {
      await wf.condition(wf.allHandlersFinished);
      await wf.continueAsNew<typeof admissionController>(opts, state);
    }
  }
}
