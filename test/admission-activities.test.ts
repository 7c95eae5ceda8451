// closedWorkflows (the admission controller's check of its holders) with a stand-in Temporal client:
// describes run a few at a time, not one after another, and the answer keeps the input order.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { createAdmissionActivities } from '../activities/admission';
import type { RunwayClient } from '../src/runway/client';

describe('closedWorkflows', () => {
  it('describes holders concurrently and reports closed and unknown workflows in order', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const status = (id: string) => (id.endsWith('3') || id.endsWith('7') ? 'COMPLETED' : 'RUNNING');
    const client = {
      workflow: {
        getHandle: (id: string) => ({
          async describe() {
            inFlight++;
            maxInFlight = Math.max(maxInFlight, inFlight);
            await new Promise((r) => setTimeout(r, 20));
            inFlight--;
            if (id === 'wf-5') throw new WorkflowNotFoundError('not found', id, undefined);
            return { status: { name: status(id) } };
          },
        }),
      },
    } as unknown as Client;
    const acts = createAdmissionActivities({ runway: {} as RunwayClient, temporal: () => client });
    const ids = Array.from({ length: 40 }, (_, i) => `wf-${i}`);
    const t0 = Date.now();
    const closed = await acts.closedWorkflows({ workflowIds: ids });
    assert.deepEqual(closed, ids.filter((id) => id === 'wf-5' || status(id) !== 'RUNNING'));
    assert.ok(maxInFlight > 1 && maxInFlight <= 16, `at most 16 describes at once (saw ${maxInFlight})`);
    assert.ok(Date.now() - t0 < 40 * 20, 'faster than one at a time');
  });

  it('fails on other errors (the activity is retried)', async () => {
    const client = { workflow: { getHandle: () => ({ describe: async () => { throw new Error('unavailable'); } }) } } as unknown as Client;
    const acts = createAdmissionActivities({ runway: {} as RunwayClient, temporal: () => client });
    await assert.rejects(acts.closedWorkflows({ workflowIds: ['a', 'b'] }), /unavailable/);
  });
});
