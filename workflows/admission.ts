// Admission control: one long-lived workflow holds the account's Runway session slots and grants them,
// renewals first, then first come first served. A session's first request is an update (with start
// when no controller runs; from a local activity) answered at once: a free slot with nobody waiting
// ahead is granted in the answer, one round trip. Otherwise (and when the update cannot be had at once:
// the server allows 10 updates in flight per workflow, and a burst of starts has many more:
// activities/admission.ts) requests are signals and grants come
// as signals, every grant that fits in one workflow task, held at once (the controller never waits
// for a grant's delivery). Sessions release in teardown.
//
// Why it keeps up whatever fails around it:
// - The limit is a hint, never a gate. `RUNWAY_SESSION_LIMIT` or the organization endpoint give a
//   ceiling when they can; with neither, the controller admits. Runway's own `concurrency_limited`
//   answer is the authority: the refused session says so (its request again, `refused`), gives its
//   slot back and waits at the head of the line, and the controller learns a limit of the slots the
//   others hold right then. A learned limit is probed upward (one more slot per quiet check while
//   sessions wait), so one taken by sessions that are not ours (another client, a lost create
//   answer) comes back once they are gone. The last good limit survives every failure.
// - It never fails on an activity failure (caught, logged, tried again at the next check).
// - Requests are idempotent by request id and repeated by waiting sessions now and then: a request
//   lost with a crashed controller comes back, and a repeat from a holder re-sends its grant.
// - Holders whose workflow closed without releasing (terminated), or is stuck (a workflow task
//   pending for `stuckAfterSeconds`: it can neither use nor give back its slot), are released by a
//   periodic check. A stuck holder's Runway session, if any, still counts in Runway's own count.
// - Reconciliation measures free slots against the account's limit, so a limit learned while
//   sessions that are not ours held slots (lost create answers) comes back as soon as they are gone.
// - Holders are reconciled against Runway's own view: while sessions wait and every slot is held,
//   Runway's count of active sessions is read every few seconds, and slots it shows free (holders
//   whose Runway session ended, their release still on its way through a slow teardown) are granted
//   beyond the holders' count, minus grants too recent to have reached Runway.
import * as wf from '@temporalio/workflow';
import type { AdmissionActivities } from '../activities';
import {
  admissionStateQuery,
  releaseSlotSignal,
  requestSlotNowUpdate,
  requestSlotSignal,
  slotGrantedSignal,
  type AdmissionState,
  type SlotRequest,
} from './shared';

const { getSessionLimit, closedWorkflows, runwayActiveSessions } = wf.proxyActivities<AdmissionActivities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '1s', maximumInterval: '10s', maximumAttempts: 3 },
});

/** While sessions wait with every slot held, Runway's own count is read this often. */
const RECONCILE_EVERY_MS = 3_000;
/**
 * A grant this recent may not have reached Runway yet: it counts as taken whatever Runway says. (15 s
 * double-counted most of a burst of grants after a restart, already at Runway: sessions waited with
 * Runway at 13 of 20 in a chaos run.)
 */
const CREATE_LEAD_MS = 8_000;
/** Runway ends every session within its maxDuration (at most 30 min) of being created, and then some. */
const ACTIVE_LOOKBACK_MINUTES = 45;

/** How long a fresh controller waits for the limit hint before its first grants. */
const FIRST_HINT_WAIT_MS = 10_000;

/** Signals sent per workflow task (the server bounds a workflow's outstanding external signals). */
const MAX_GRANTS_PER_TASK = 200;

/** A holder whose workflow task has been pending this long is stuck (see closedWorkflows): its slot is released. */
const STUCK_AFTER_SECONDS = 600;

export interface AdmissionOptions {
  /** How often holders are checked for closed workflows, the limit refreshed and a learned limit probed. */
  checkIntervalSeconds?: number;
  /**
   * A holder still running but stuck this long (a workflow task pending all that time: failing on
   * every attempt, or no worker for its queue) can neither use nor give back its slot: it is released.
   */
  stuckAfterSeconds?: number;
}

/** What a session sends (the `requestSlot` signal's payload, with the session's side of the protocol). */
export interface AdmissionRequest extends SlotRequest {
  /** A renewal's extra slot: granted before new sessions. */
  renewal?: boolean;
  /** Runway answered `concurrency_limited` to the create this grant was for: the slot is given back and asked for again. */
  refused?: boolean;
}

/** The controller's state (the `admissionState` query; carried across continue-as-new). */
export interface ControllerState extends AdmissionState {
  /** `limit` is what grants follow: 0 = no limit known (admit). */
  queue: AdmissionRequest[];
  /** The configured or organization limit, the last good one (undefined: never known). */
  hint?: number;
  hintSource?: string;
  /** The limit Runway's refusals taught (never above the hint), while it holds. */
  learned?: number;
  /** Runway refusals reported so far. */
  refusals?: number;
  /** Runway's own count of active sessions when last read (reconciliation), and the grants it allowed beyond the holders' count. */
  runwayActive?: { count: number; at: string; extraGrants: number };
  /** Grants sent again to a holder that asked again (its grant was lost). */
  regrants?: number;
  /** Slots and requests dropped because their workflow had closed without releasing, or was stuck. */
  droppedHolders?: number;
}

/** A run continues as new past this many events: a replay of the controller (after a timed-out task) stays short. */
const CONTINUE_AS_NEW_EVENTS = 1500;

class Controller {
  dirty = true;
  /** Granting has begun (a fresh controller first waits a while for the limit hint). */
  open = false;
  /** A refusal came in: Runway's count is read at once (the limit it taught may be low: sessions not ours, soon gone). */
  reconcileNow = false;
  /** A refusal since the last check (a learned limit is not probed upward then). */
  refusedSinceCheck = false;
  /** Grant signals sent and not yet delivered (bounded: the server limits a workflow's outstanding external signals). */
  inFlight = 0;
  /** Holders that asked again: their grant is signalled again. */
  private readonly resend = new Set<string>();

  constructor(readonly state: ControllerState) {
    wf.setHandler(admissionStateQuery, () => this.state);
    wf.setHandler(requestSlotSignal, (req) => this.request(req as AdmissionRequest));
    wf.setHandler(requestSlotNowUpdate, (req) => this.requestNow(req as AdmissionRequest));
    wf.setHandler(releaseSlotSignal, ({ requestId }) => this.release(requestId));
  }

  private request(req: AdmissionRequest): void {
    const { state } = this;
    const held = state.holders.find((h) => h.requestId === req.requestId);
    if (req.refused) {
      this.refusedSinceCheck = true;
      this.reconcileNow = true; // what Runway counts now, rather than at the next tick
      state.refusals = (state.refusals ?? 0) + 1;
      if (held) state.holders = state.holders.filter((h) => h !== held);
      // Runway is full with the slots the others hold now (ours: theirs are all it can count of us).
      this.learn(Math.max(1, state.holders.length), held ? 'the slots held when Runway refused' : 'Runway refused (request unknown here)');
      if (!state.queue.some((q) => q.requestId === req.requestId)) this.enqueue({ ...req, refused: undefined }, true);
      this.dirty = true;
      return;
    }
    if (held) {
      // Asked again while holding: the grant did not arrive (or arrived at a run that is gone).
      this.resend.add(req.requestId);
      this.dirty = true;
      return;
    }
    if (state.queue.some((q) => q.requestId === req.requestId)) return;
    this.enqueue(req, false);
    this.dirty = true;
  }

  /**
   * A session's first request, answered at once: granted in the answer when a slot is free and nobody
   * waits ahead (no grant signal: the answer is the grant), else queued as a signalled request is.
   * Asked again (its answer was lost), a holder hears `granted` again.
   */
  private requestNow(req: AdmissionRequest): { granted: boolean } {
    const { state } = this;
    if (state.holders.some((h) => h.requestId === req.requestId)) return { granted: true };
    if (this.open && !req.refused && !state.queue.length && this.hasRoom()) {
      if (state.limit !== 0 && state.holders.length >= state.limit) {
        // A slot only Runway's own count showed free.
        this.extra = Math.max(0, this.extra - 1);
        if (state.runwayActive) state.runwayActive.extraGrants++;
      }
      this.hold(req);
      return { granted: true };
    }
    this.request(req);
    return { granted: false };
  }

  /** Renewals before new sessions; each group first come first served (a refused one at the head of its group). */
  private enqueue(req: AdmissionRequest, head: boolean): void {
    const q = this.state.queue;
    const renewal = !!req.renewal;
    let i: number;
    if (renewal) i = head ? 0 : q.findIndex((r) => !r.renewal);
    else if (head) i = q.findIndex((r) => !r.renewal);
    else i = -1;
    if (i < 0) q.push(req);
    else q.splice(i, 0, req);
  }

  private release(requestId: string): void {
    this.state.holders = this.state.holders.filter((h) => h.requestId !== requestId);
    this.state.queue = this.state.queue.filter((q) => q.requestId !== requestId);
    this.resend.delete(requestId);
    this.dirty = true;
  }

  private hold(req: AdmissionRequest): void {
    this.state.holders.push({ requestId: req.requestId, holder: req.holder, at: req.at, grantedAt: new Date(Date.now()).toISOString() });
    this.state.granted++;
  }

  /** The limit grants follow: the learned one while it holds, else the hint, else none (0: admit). */
  private applyLimit(): void {
    const { state } = this;
    if (state.learned !== undefined && state.hint !== undefined && state.learned >= state.hint) state.learned = undefined;
    const before = state.limit;
    state.limit = state.learned ?? state.hint ?? 0;
    state.limitSource = state.learned !== undefined ? 'learned from Runway refusals' : (state.hintSource ?? 'unknown: admitting');
    if (state.limit !== before) wf.log.info('admission limit changed', { limit: state.limit, from: before, source: state.limitSource });
  }

  private learn(limit: number, why: string): void {
    const current = this.state.limit || Infinity;
    if (limit >= current) return;
    this.state.learned = limit;
    wf.log.warn('Runway refused a session: admitting fewer', { limit, why });
    this.applyLimit();
  }

  /**
   * Slots Runway's own count showed free although holders hold them (holders whose Runway session
   * ended and whose release is on its way: a teardown on a busy or restarting worker takes a while).
   */
  extra = 0;

  private room(): number {
    const { limit, holders } = this.state;
    return limit === 0 ? MAX_GRANTS_PER_TASK : Math.max(0, limit - holders.length) + this.extra;
  }

  private hasRoom(): boolean {
    return this.room() > 0;
  }

  /** Worth reading Runway's count: sessions wait, every slot is held. */
  needsReconcile(): boolean {
    return this.state.limit > 0 && this.state.queue.length > 0 && this.state.holders.length >= this.state.limit && this.extra === 0;
  }

  /** Reads Runway's count of active sessions and allows that many more grants than the holders' count says. */
  async reconcile(): Promise<void> {
    const startedAt = Date.now();
    let active: number;
    try {
      ({ active } = await runwayActiveSessions({ lookbackMinutes: ACTIVE_LOOKBACK_MINUTES }));
    } catch (err) {
      wf.log.warn("could not read Runway's active sessions; trying again", { error: String(err) });
      return;
    }
    // Granted lately (or since the read began): maybe not at Runway yet, so not in its count.
    const recent = this.state.holders.filter((h) => Date.parse(h.grantedAt) >= startedAt - CREATE_LEAD_MS).length;
    // Against the account's limit when known (a limit learned from a refusal may be lower only because
    // sessions that are not ours held slots then, e.g. ones whose create answer was lost: Runway's
    // count shows when they are gone), else the limit grants follow.
    const free = Math.max(0, (this.state.hint ?? this.state.limit) - active - recent);
    this.extra = Math.max(0, free - Math.max(0, this.state.limit - this.state.holders.length));
    this.state.runwayActive = { count: active, at: new Date(startedAt).toISOString(), extraGrants: this.state.runwayActive?.extraGrants ?? 0 };
    if (this.extra > 0) {
      wf.log.info('Runway counts fewer active sessions than slots held: granting beyond the holders', {
        active,
        holders: this.state.holders.length,
        extra: this.extra,
      });
      this.dirty = true;
    }
  }

  /**
   * Grants waiting requests (renewals first) while capacity lasts, all that fit in one workflow task;
   * re-sends asked-again grants. A grant holds its slot at once and its signal is not waited for:
   * under load a signal took minutes to be delivered, and grants waited behind it. A grant whose
   * signal fails (the requester is gone) gives its slot back.
   */
  grantWaiting(): void {
    const { state } = this;
    while (((state.queue.length && this.hasRoom()) || this.resend.size) && this.inFlight < MAX_GRANTS_PER_TASK) {
      const batch = state.queue.splice(0, Math.min(MAX_GRANTS_PER_TASK - this.inFlight, this.room()));
      // Grants beyond the holders' count use up what the last reconciliation allowed.
      const beyond = state.limit === 0 ? 0 : Math.max(0, batch.length - Math.max(0, state.limit - state.holders.length));
      this.extra = Math.max(0, this.extra - beyond);
      if (state.runwayActive) state.runwayActive.extraGrants += beyond;
      const again = [...this.resend].slice(0, Math.max(0, MAX_GRANTS_PER_TASK - this.inFlight - batch.length));
      for (const id of again) this.resend.delete(id);
      for (const r of batch) this.hold(r);
      const targets = [...batch, ...again.map((id) => state.holders.find((h) => h.requestId === id)).filter((h) => h !== undefined)];
      for (const r of targets) this.signalGrant(r.holder, r.requestId);
      state.regrants = (state.regrants ?? 0) + (targets.length - batch.length);
      if (!batch.length && !again.length) break;
    }
    // What a reconciliation allowed is used now or never: a later grant reads Runway's count again.
    this.extra = 0;
    this.dirty = false;
  }

  private signalGrant(holder: string, requestId: string): void {
    this.inFlight++;
    wf.getExternalWorkflowHandle(holder)
      .signal(slotGrantedSignal, { requestId })
      .catch(() => {
        // The requester is gone: its slot goes back.
        this.state.holders = this.state.holders.filter((h) => h.requestId !== requestId);
      })
      .finally(() => {
        this.inFlight--;
        this.dirty = true;
      });
  }

  /** Frees the slots of holders whose workflows closed without releasing, or are stuck; a failed check waits for the next. */
  async dropClosedHolders(stuckAfterSeconds: number): Promise<void> {
    const ids = [...new Set([...this.state.holders, ...this.state.queue].map((h) => h.holder))];
    if (!ids.length) return;
    let closed: Set<string>;
    try {
      closed = new Set(await closedWorkflows({ workflowIds: ids, stuckAfterSeconds }));
    } catch (err) {
      wf.log.warn('could not check holders for closed workflows; trying again at the next check', { error: String(err) });
      return;
    }
    const before = this.state.holders.length + this.state.queue.length;
    this.state.holders = this.state.holders.filter((h) => !closed.has(h.holder));
    this.state.queue = this.state.queue.filter((q) => !closed.has(q.holder));
    if (this.state.holders.length + this.state.queue.length !== before) {
      this.state.droppedHolders = (this.state.droppedHolders ?? 0) + (before - this.state.holders.length - this.state.queue.length);
      wf.log.warn('released slots of closed or stuck workflows', { workflows: [...closed] });
    }
    this.dirty = true;
  }

  /** The hint again (a failure or an unknown answer keeps the last good one). */
  async refreshLimit(): Promise<void> {
    try {
      const hint = await getSessionLimit();
      if (hint.limit !== undefined) {
        this.state.hint = hint.limit;
        this.state.hintSource = hint.source;
      } else if (this.state.hint === undefined) {
        this.state.hintSource = hint.source;
      } else {
        wf.log.warn('account limit not known now; keeping the last one', { limit: this.state.hint, why: hint.source });
      }
    } catch (err) {
      wf.log.warn('could not read the account limit; keeping the last one', { limit: this.state.hint, error: String(err) });
    }
    this.applyLimit();
    this.dirty = true;
  }

  /** A learned limit gets one more slot after a quiet interval in which sessions waited for one. */
  probe(): void {
    const { state } = this;
    if (state.learned !== undefined && !this.refusedSinceCheck && state.queue.length > 0 && state.holders.length >= state.learned) {
      state.learned++;
      this.applyLimit();
      this.dirty = true;
    }
    this.refusedSinceCheck = false;
  }
}

export async function admissionController(opts: AdmissionOptions = {}, carried?: AdmissionState): Promise<void> {
  const controller = new Controller(carried ?? { limit: 0, holders: [], queue: [], granted: 0, limitSource: 'unknown: admitting' });
  const checkMs = (opts.checkIntervalSeconds ?? 30) * 1000;
  let lastCheck = Date.now();
  // The periodic check runs beside granting: its activities may take long (a worker killed under
  // one costs its timeout), and grants must not wait for them.
  let checking: Promise<void> | undefined;
  // Reconciliation with Runway's own count, beside granting too.
  let reconciling: Promise<void> | undefined;
  let lastReconcile = 0;
  if (!carried) {
    // A fresh controller asks for the hint before its first grants, for a while (a failure, no
    // answer or no answer yet: it admits, and Runway's refusals teach the limit).
    let asked = false;
    checking = controller.refreshLimit().finally(() => {
      asked = true;
      checking = undefined;
    });
    await wf.condition(() => asked, FIRST_HINT_WAIT_MS);
  }
  controller.open = true;
  for (;;) {
    controller.grantWaiting();
    await wf.condition(
      () => controller.dirty,
      Math.max(1000, Math.min(checkMs - (Date.now() - lastCheck), controller.needsReconcile() ? RECONCILE_EVERY_MS : Infinity)),
    );
    if (!reconciling && controller.needsReconcile() && (controller.reconcileNow || Date.now() - lastReconcile >= RECONCILE_EVERY_MS)) {
      lastReconcile = Date.now();
      controller.reconcileNow = false;
      reconciling = controller.reconcile().finally(() => {
        reconciling = undefined;
      });
    }
    if (!checking && Date.now() - lastCheck >= checkMs) {
      lastCheck = Date.now();
      controller.probe();
      checking = (async () => {
        await controller.dropClosedHolders(opts.stuckAfterSeconds ?? STUCK_AFTER_SECONDS);
        await controller.refreshLimit();
      })().finally(() => {
        checking = undefined;
        controller.dirty = true;
      });
    }
    if (wf.workflowInfo().continueAsNewSuggested || wf.workflowInfo().historyLength > CONTINUE_AS_NEW_EVENTS) {
      // At once, not after the check or the reconciliation (reads the next run makes again): a check
      // whose activity lagged under load kept a run from continuing while requests grew its history
      // past 4,000 events, and then every timed-out task replayed all of them, slower than the timeout.
      await wf.condition(() => controller.inFlight === 0 && wf.allHandlersFinished());
      await wf.continueAsNew<typeof admissionController>(opts, controller.state);
    }
  }
}
