// The chaos run in short form (npm run chaos is the long one): a few sessions in every mode while the
// orchestration worker, the media worker and the Temporal dev server are SIGKILLed and restarted, and
// the Runway simulator injects 5xx, 429, resets and lost create answers. Every end check must hold.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { dispose } from '@livekit/rtc-node';
import { reapChildrenOnExit } from '../src/dev/child';
import { formatChaosReport, runChaos } from '../src/chaos/harness';

reapChildrenOnExit();

after(async () => {
  await dispose();
});

describe('chaos', () => {
  it('sessions survive SIGKILLs of every process kind and injected Runway faults; nothing leaks', async () => {
    const seed = Number(process.env.CHAOS_SEED ?? 20261201);
    const started = Date.now();
    const report = await runChaos({ sessions: 9, seed, killsPerKind: 2, chaosSeconds: 25, liveSeconds: [2, 6], drainSeconds: 90, log: () => undefined });
    console.log(formatChaosReport(report));
    assert.deepEqual(report.failures, []);
    assert.equal(report.outcomes.completed + report.outcomes.failed, 9, 'every session completed or failed');
    assert.equal(report.outcomes.unfinished, 0);
    assert.deepEqual(report.orphans, [], 'no Runway session left billing');
    assert.deepEqual(report.invariantViolations, []);
    assert.deepEqual(report.leftoverParticipants, []);
    for (const kind of ['worker', 'media-worker', 'temporal'] as const) assert.ok(report.kills[kind] >= 2, `${kind} killed twice`);
    assert.ok(Object.values(report.faults).reduce((a, b) => a + b, 0) > 0, 'faults were injected');
    console.log(`the short chaos run took ${((Date.now() - started) / 1000).toFixed(0)} s`);
  });
});
