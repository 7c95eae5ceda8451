// Admission control's activities: the account's limit (a hint: never an error), asking for and
// releasing a slot, and finding holders whose workflows closed without releasing.
import type { Client } from '@temporalio/client';
import { WithStartWorkflowOperation, WorkflowNotFoundError } from '@temporalio/client';
import type { RunwayClient } from '../src/runway/client';
import {
  ADMISSION_TASK_QUEUE,
  ADMISSION_WORKFLOW_ID,
  ADMISSION_WORKFLOW_TYPE,
  releaseSlotSignal,
  requestSlotNowUpdate,
  requestSlotSignal,
  type SlotRequest,
} from '../workflows/shared';
import { avatarConcurrencyLimit } from '../src/runway/types';
import { isRunwayError } from '../src/runway/errors';
import { asFailure } from './failures';
import { redactString } from '../src/redact';

export interface AdmissionDeps {
  runway: RunwayClient;
  temporal: () => Client;
  /** A configured limit wins over the account's (`GET /v1/organization`). */
  sessionLimitOverride?: number;
  checkIntervalSeconds?: number;
}

/** The account's limit as far as it is known: `limit` undefined = not known (the controller admits). */
export interface SessionLimitHint {
  limit?: number;
  source: string;
}

/**
 * How long a request waits for the controller's immediate answer before it queues by signal instead.
 * Short: past the server's limit of updates in flight the client retries with backoff, and the session's
 * first workflow task (this local activity runs inside it) must not wait that out.
 */
const UPDATE_WAIT_MS = 1_500;
/**
 * Immediate requests this process has in flight at most (Temporal allows 10 updates in flight per
 * workflow, across all workers): in a burst the rest queue by signal at once instead of being refused
 * and retried.
 */
const MAX_UPDATES_IN_FLIGHT = 8;

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))]).finally(() => clearTimeout(timer));
}

/** Concurrent describes in closedWorkflows. */
const CLOSED_CHECK_CONCURRENCY = 16;

export function createAdmissionActivities(deps: AdmissionDeps) {
  let updatesInFlight = 0;
  return {
    /**
     * The limit to admit by: the configured one, else the organization endpoint's `gwm1_avatars`
     * limit. That endpoint is only a hint (shared/runway-realtime-api.md): a refusal (404, 401 for a
     * key without the scope), a malformed answer, an answer without `gwm1_avatars` or a failed call
     * all mean "not known", never an error and never a made-up limit. Runway's own
     * `concurrency_limited` answers teach the controller the rest.
     */
    async getSessionLimit(): Promise<SessionLimitHint> {
      if (deps.sessionLimitOverride) return { limit: deps.sessionLimitOverride, source: 'configured' };
      try {
        const org = await deps.runway.getOrganization();
        const limit = avatarConcurrencyLimit(org);
        if (typeof limit === 'number' && Number.isInteger(limit) && limit > 0) return { limit, source: 'runway organization' };
        return { source: 'unknown: the organization answer states no gwm1_avatars concurrency limit' };
      } catch (err) {
        const why = isRunwayError(err) ? `${err.kind}${err.status ? ` ${err.status}` : ''}` : 'error';
        return { source: `unknown: GET /v1/organization failed (${why}: ${redactString(err instanceof Error ? err.message : String(err)).slice(0, 200)})` };
      }
    },

    /**
     * How many realtime sessions Runway itself counts as active now (its conversations in progress;
     * created within the last `lookbackMinutes`: Runway ends every session by its maxDuration, at
     * most 30 min). The controller reconciles its holders against it.
     */
    async runwayActiveSessions(req: { lookbackMinutes: number }): Promise<{ active: number }> {
      let active = 0;
      try {
        for await (const c of deps.runway.iterateConversations({ startDate: new Date(Date.now() - req.lookbackMinutes * 60_000).toISOString(), limit: 100 })) {
          if ((c as { status?: string }).status === 'in_progress') active++;
        }
      } catch (err) {
        asFailure(err);
      }
      return { active };
    },

    /**
     * Asks the controller for a slot, starting it if needed. First as an update (one round trip: a
     * free slot is granted in the answer); when the update cannot be had quickly (the server bounds a
     * workflow's updates in flight, so a burst overflows; a slow controller), as a signal: queued, the
     * grant comes as a signal. Both are deduplicated by request id, so trying both is safe.
     */
    async requestAdmission(req: SlotRequest & { now?: boolean }): Promise<{ granted: boolean }> {
      const { now, ...request } = req;
      const start = {
        workflowId: ADMISSION_WORKFLOW_ID,
        taskQueue: ADMISSION_TASK_QUEUE,
        args: [{ checkIntervalSeconds: deps.checkIntervalSeconds ?? 30 }] as const,
        staticSummary: 'Runway session slots (admission control)',
        // Its tasks carry every request since the last one: on a loaded worker one may take longer than
        // the default 10 s, and a timed-out task is replayed from the run's history (continued runs inherit this).
        workflowTaskTimeout: '30s' as const,
      };
      if (now && updatesInFlight < MAX_UPDATES_IN_FLIGHT) {
        // A plain update while the controller runs (the usual case: one call, no start to consider),
        // with start when it does not.
        const client = deps.temporal();
        const update = () =>
          client.workflow
            .getHandle(ADMISSION_WORKFLOW_ID)
            .executeUpdate(requestSlotNowUpdate, { args: [request] })
            .catch((err: unknown) => {
              if (!(err instanceof WorkflowNotFoundError)) throw err;
              return client.workflow.executeUpdateWithStart(requestSlotNowUpdate, {
                args: [request],
                startWorkflowOperation: new WithStartWorkflowOperation(ADMISSION_WORKFLOW_TYPE, {
                  ...start,
                  args: [...start.args],
                  workflowIdConflictPolicy: 'USE_EXISTING',
                }),
              });
            });
        updatesInFlight++;
        // Counted until the server answers, not until this request stops waiting for it.
        const answered = update().finally(() => updatesInFlight--);
        const answer = await withTimeout(answered, UPDATE_WAIT_MS).catch(() => undefined);
        answered.catch(() => undefined); // answered late or refused: the signal below queues it
        if (answer) return answer;
      }
      await deps
        .temporal()
        .workflow.signalWithStart(ADMISSION_WORKFLOW_TYPE, { ...start, args: [...start.args], signal: requestSlotSignal, signalArgs: [request] });
      return { granted: false };
    },

    async releaseAdmission(req: { requestId: string }): Promise<void> {
      try {
        await deps.temporal().workflow.getHandle(ADMISSION_WORKFLOW_ID).signal(releaseSlotSignal, req);
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err; // no controller: nothing is held
      }
    },

    /**
     * Which of these workflows cannot use or give back a slot: closed, unknown, or (with
     * `stuckAfterSeconds`) stuck: running with a workflow task pending for that long (scheduled and
     * never completed, across its attempts: a task that fails every time, or no worker for its
     * queue). A healthy workflow's task is pending for moments. Described a few at a time (the
     * controller passes every holder: one at a time took longer than the activity's timeout at
     * hundreds of sessions); the answer keeps the order of `workflowIds`.
     */
    async closedWorkflows(req: { workflowIds: string[]; stuckAfterSeconds?: number }): Promise<string[]> {
      const client = deps.temporal();
      const isClosed = new Array<boolean>(req.workflowIds.length).fill(false);
      let next = 0;
      const describeNext = async (): Promise<void> => {
        while (next < req.workflowIds.length) {
          const i = next++;
          try {
            const d = await client.workflow.getHandle(req.workflowIds[i]!).describe();
            isClosed[i] = d.status.name !== 'RUNNING' || (req.stuckAfterSeconds !== undefined && pendingTaskMs(d.raw) > req.stuckAfterSeconds * 1000);
          } catch (err) {
            if (err instanceof WorkflowNotFoundError) isClosed[i] = true;
            else throw err;
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(CLOSED_CHECK_CONCURRENCY, req.workflowIds.length) }, describeNext));
      return req.workflowIds.filter((_, i) => isClosed[i]);
    },
  };
}

/** How long a workflow's current workflow task has been pending, across its attempts (0: none pending). */
function pendingTaskMs(
  raw:
    | {
        pendingWorkflowTask?: {
          originalScheduledTime?: { seconds?: unknown; nanos?: number | null } | null;
          scheduledTime?: { seconds?: unknown; nanos?: number | null } | null;
        } | null;
      }
    | undefined,
): number {
  const task = raw?.pendingWorkflowTask;
  const at = task?.originalScheduledTime ?? task?.scheduledTime;
  if (!at || at.seconds === undefined || at.seconds === null) return 0;
  const seconds =
    typeof at.seconds === 'object' && typeof (at.seconds as { toNumber?: unknown }).toNumber === 'function'
      ? (at.seconds as { toNumber(): number }).toNumber()
      : Number(at.seconds);
  if (!Number.isFinite(seconds)) return 0;
  return Math.max(0, Date.now() - (seconds * 1000 + Math.floor((at.nanos ?? 0) / 1e6)));
}
