// Admission activities with stand-in clients: closedWorkflows (the controller's check of its holders)
// describes run a few at a time, not one after another, and the answer keeps the input order; and
// getSessionLimit, whose organization answer is a hint (not known is an answer, never an error).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { createAdmissionActivities } from '../activities/admission';
import type { RunwayClient } from '../src/runway/client';
import { RunwayError } from '../src/runway/errors';

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
    assert.deepEqual(
      closed,
      ids.filter((id) => id === 'wf-5' || status(id) !== 'RUNNING'),
    );
    assert.ok(maxInFlight > 1 && maxInFlight <= 16, `at most 16 describes at once (saw ${maxInFlight})`);
    console.log(`closedWorkflows: 40 workflows described in ${Date.now() - t0} ms (a figure, not a bound)`);
  });

  it('fails on other errors (the activity is retried)', async () => {
    const client = {
      workflow: {
        getHandle: () => ({
          describe: async () => {
            throw new Error('unavailable');
          },
        }),
      },
    } as unknown as Client;
    const acts = createAdmissionActivities({ runway: {} as RunwayClient, temporal: () => client });
    await assert.rejects(acts.closedWorkflows({ workflowIds: ['a', 'b'] }), /unavailable/);
  });
});

describe('getSessionLimit', () => {
  const withOrg = (getOrganization: () => Promise<unknown>, sessionLimitOverride?: number) =>
    createAdmissionActivities({ runway: { getOrganization } as unknown as RunwayClient, temporal: () => ({}) as Client, sessionLimitOverride });
  const tier = (models: Record<string, unknown>) => ({ creditBalance: 1, tier: { maxMonthlyCreditSpend: 1, models }, usage: { models: {} } });

  it("reads gwm1_avatars' limit; a configured limit wins", async () => {
    assert.deepEqual(await withOrg(async () => tier({ gwm1_avatars: { maxConcurrentGenerations: 7, maxDailyGenerations: null } })).getSessionLimit(), {
      limit: 7,
      source: 'runway organization',
    });
    assert.deepEqual(
      await withOrg(async () => {
        throw new Error('not called');
      }, 4).getSessionLimit(),
      { limit: 4, source: 'configured' },
    );
  });

  it('a refused call, an answer without gwm1_avatars or without a limit: not known (never an error, never a made-up limit)', async () => {
    const notFound = await withOrg(async () => {
      throw new RunwayError({ kind: 'not_found', endpoint: 'organization', message: 'Runway organization failed with 404', status: 404, retryable: false });
    }).getSessionLimit();
    assert.equal(notFound.limit, undefined);
    assert.match(notFound.source, /unknown: .*404/);
    for (const models of [
      { gen4_turbo: { maxConcurrentGenerations: 2, maxDailyGenerations: 1 } },
      { gwm1_avatars: { maxConcurrentGenerations: null, maxDailyGenerations: null } },
    ]) {
      const hint = await withOrg(async () => tier(models)).getSessionLimit();
      assert.equal(hint.limit, undefined, JSON.stringify(models));
      assert.match(hint.source, /no gwm1_avatars concurrency limit/);
    }
  });
});
