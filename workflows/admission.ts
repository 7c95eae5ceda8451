// Admission control: one long-lived workflow holds the account's Runway session slots and grants them
// first come, first served. A session asks with a signal (signal-with-start, from a local activity)
// and gets its grant as a signal; every grant that fits goes out in one workflow task. (Not an update:
// the server allows 10 updates in flight per workflow, and a burst of starts has many more.) Sessions
// release in teardown.
// Holders whose workflow closed without releasing (terminated) are found by a periodic check.
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

class Controller {
  dirty = true;
  /** Grants being signalled right now: a release for one of them must not be lost when it lands. */
  private readonly granting = new Set<string>();
  private readonly releasedWhileGranting = new Set<string>();

  constructor(readonly state: AdmissionState) {
    wf.setHandler(admissionStateQuery, () => this.state);
    wf.setHandler(requestSlotSignal, (req) => this.request(req));
    wf.setHandler(releaseSlotSignal, ({ requestId }) => this.release(requestId));
  }

  private request(req: SlotRequest): void {
    if (this.state.holders.some((h) => h.requestId === req.requestId) || this.state.queue.some((q) => q.requestId === req.requestId)) return;
    this.state.queue.push(req);
    this.dirty = true;
  }

  private release(requestId: string): void {
    this.state.holders = this.state.holders.filter((h) => h.requestId !== requestId);
    this.state.queue = this.state.queue.filter((q) => q.requestId !== requestId);
    if (this.granting.has(requestId)) this.releasedWhileGranting.add(requestId);
    this.dirty = true;
  }

  private hold(req: SlotRequest): void {
    this.state.holders.push({ ...req, grantedAt: new Date(Date.now()).toISOString() });
    this.state.granted++;
  }

  /** Grants waiting requests in arrival order while capacity lasts, all that fit in one workflow task. */
  async grantWaiting(): Promise<void> {
    const { state } = this;
    while (state.queue.length && state.holders.length < state.limit) {
      const batch = state.queue.splice(0, Math.min(MAX_GRANTS_PER_TASK, state.limit - state.holders.length));
      for (const r of batch) this.granting.add(r.requestId);
      const sent = await Promise.allSettled(
        batch.map((r) => wf.getExternalWorkflowHandle(r.holder).signal(slotGrantedSignal, { requestId: r.requestId })),
      );
      batch.forEach((r, i) => {
        this.granting.delete(r.requestId);
        // A failed signal: the requester is gone, its request is dropped.
        if (sent[i]!.status === 'rejected' || this.releasedWhileGranting.delete(r.requestId)) return;
        this.hold(r);
      });
    }
    this.dirty = false;
  }

  /** Frees the slots of holders whose workflows closed without releasing. */
  async dropClosedHolders(): Promise<void> {
    const ids = [...new Set([...this.state.holders, ...this.state.queue].map((h) => h.holder))];
    if (!ids.length) return;
    const closed = new Set(await closedWorkflows({ workflowIds: ids }));
    const before = this.state.holders.length + this.state.queue.length;
    this.state.holders = this.state.holders.filter((h) => !closed.has(h.holder));
    this.state.queue = this.state.queue.filter((q) => !closed.has(q.holder));
    if (this.state.holders.length + this.state.queue.length !== before) wf.log.warn('released slots of closed workflows', { closed: [...closed] });
    this.dirty = true;
  }

  async refreshLimit(): Promise<void> {
    const { limit, source } = await getSessionLimit();
    this.state.limit = limit;
    this.state.limitSource = source;
    this.dirty = true;
  }
}

export async function admissionController(opts: AdmissionOptions = {}, carried?: AdmissionState): Promise<void> {
  const controller = new Controller(carried ?? { limit: 0, holders: [], queue: [], granted: 0, limitSource: 'unknown' });
  const checkMs = (opts.checkIntervalSeconds ?? 30) * 1000;
  if (controller.state.limit === 0) await controller.refreshLimit();
  let lastCheck = Date.now();
  for (;;) {
    await controller.grantWaiting();
    await wf.condition(() => controller.dirty, Math.max(1000, checkMs - (Date.now() - lastCheck)));
    if (Date.now() - lastCheck >= checkMs) {
      lastCheck = Date.now();
      await controller.dropClosedHolders();
      await controller.refreshLimit();
    }
    if (wf.workflowInfo().continueAsNewSuggested || wf.workflowInfo().historyLength > 2000) {
      await wf.condition(wf.allHandlersFinished);
      await wf.continueAsNew<typeof admissionController>(opts, controller.state);
    }
  }
}
