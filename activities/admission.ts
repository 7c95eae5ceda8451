// Admission control's activities: the account's limit, asking for and releasing a slot, and finding
// holders whose workflows closed without releasing.
import type { Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { RunwayClient } from '../src/runway/client';
import {
  ADMISSION_WORKFLOW_ID, ADMISSION_WORKFLOW_TYPE, SESSION_TASK_QUEUE, releaseSlotSignal, requestSlotSignal, type SlotRequest,
} from '../workflows/shared';
import { asFailure } from './failures';

export interface AdmissionDeps {
  runway: RunwayClient;
  temporal: () => Client;
  /** A configured limit wins over the account's (`GET /v1/organization`). */
  sessionLimitOverride?: number;
  /** Used when neither is known. */
  defaultLimit?: number;
  checkIntervalSeconds?: number;
}

/** Concurrent describes in closedWorkflows. */
const CLOSED_CHECK_CONCURRENCY = 16;

export function createAdmissionActivities(deps: AdmissionDeps) {
  return {
    async getSessionLimit(): Promise<{ limit: number; source: string }> {
      if (deps.sessionLimitOverride) return { limit: deps.sessionLimitOverride, source: 'configured' };
      try {
        const org = await deps.runway.getOrganization();
        const limit = (org as { tier?: { models?: Record<string, { maxConcurrentGenerations?: number }> } }).tier?.models?.gwm1_avatars?.maxConcurrentGenerations;
        if (typeof limit === 'number' && limit > 0) return { limit, source: 'runway organization' };
      } catch (err) {
        asFailure(err);
      }
      return { limit: deps.defaultLimit ?? 1, source: 'default' };
    },

    /** Queues a slot request with the controller, starting it if needed (signal-with-start). */
    async requestAdmission(req: SlotRequest): Promise<void> {
      await deps.temporal().workflow.signalWithStart(ADMISSION_WORKFLOW_TYPE, {
        workflowId: ADMISSION_WORKFLOW_ID,
        taskQueue: SESSION_TASK_QUEUE,
        args: [{ checkIntervalSeconds: deps.checkIntervalSeconds ?? 30 }],
        signal: requestSlotSignal,
        signalArgs: [req],
        staticSummary: 'Runway session slots (admission control)',
      });
    },

    async releaseAdmission(req: { requestId: string }): Promise<void> {
      try {
        await deps.temporal().workflow.getHandle(ADMISSION_WORKFLOW_ID).signal(releaseSlotSignal, req);
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err; // no controller: nothing is held
      }
    },

    /**
     * Which of these workflows are no longer running (closed, or unknown). Described a few at a time
     * (the controller passes every holder: one at a time took longer than the activity's timeout at
     * hundreds of sessions); the answer keeps the order of `workflowIds`.
     */
    async closedWorkflows(req: { workflowIds: string[] }): Promise<string[]> {
      const client = deps.temporal();
      const isClosed = new Array<boolean>(req.workflowIds.length).fill(false);
      let next = 0;
      const describeNext = async (): Promise<void> => {
        while (next < req.workflowIds.length) {
          const i = next++;
          try {
            const d = await client.workflow.getHandle(req.workflowIds[i]!).describe();
            isClosed[i] = d.status.name !== 'RUNNING';
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
