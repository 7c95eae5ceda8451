// Determinism guard: histories recorded from real runs of every path (test/histories/*.json, written
// by `RECORD_HISTORIES=1 npm test`) must replay against the current workflow code. A change that
// breaks replay of what the recordings show fails here (until the first release, re-record them:
// docs/architecture.md, "Changing the workflow").
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from '@temporalio/worker';
import { installTestRuntime } from './helpers/temporal';
import { HISTORY_DIR, loadHistories } from './helpers/histories';
import { TEST_SECRETS_KEY } from './helpers/keys';
import { encryptedDataConverter } from '../src/secrets/payload-codec';


describe('replay of recorded session histories', () => {
  const histories = loadHistories();

  it('has recorded histories to replay', () => {
    assert.ok(histories.length >= 5, `expected recorded histories in ${HISTORY_DIR}, found ${histories.length}`);
  });

  // Histories recorded before the payload codec (pre-codec-*) hold plain JSON: they replay only with
  // the explicit SESSION_ALLOW_PLAINTEXT_PAYLOADS option, which is what it is for.
  const preCodec = (workflowId: string) => workflowId.startsWith('pre-codec-');

  it('replays every recorded history without a determinism violation (plaintext allowed for the pre-codec ones)', async () => {
    installTestRuntime();
    const failures: string[] = [];
    let replayed = 0;
    for await (const r of Worker.runReplayHistories({ workflowsPath: require.resolve('../workflows'), replayName: 'replay-test', dataConverter: encryptedDataConverter([TEST_SECRETS_KEY], { allowPlaintext: true }) }, histories)) {
      replayed++;
      if (r.error) failures.push(`${r.workflowId}: ${r.error.message}`);
    }
    assert.equal(replayed, histories.length);
    assert.deepEqual(failures, []);
  });

  it('with the default codec (plaintext refused): every encrypted history replays, every pre-codec one is refused', async () => {
    installTestRuntime();
    const encrypted = histories.filter((h) => !preCodec(h.workflowId));
    const plain = histories.filter((h) => preCodec(h.workflowId));
    assert.ok(encrypted.length >= 5 && plain.length >= 5, `${encrypted.length} encrypted, ${plain.length} pre-codec histories`);
    const failures: string[] = [];
    for await (const r of Worker.runReplayHistories({ workflowsPath: require.resolve('../workflows'), replayName: 'replay-strict', dataConverter: encryptedDataConverter([TEST_SECRETS_KEY]) }, encrypted)) {
      if (r.error) failures.push(`${r.workflowId}: ${r.error.message}`);
    }
    assert.deepEqual(failures, [], 'encrypted histories (admission controller, reaper-era sessions, renewals) hold no plaintext payload');
    const refused: string[] = [];
    for await (const r of Worker.runReplayHistories({ workflowsPath: require.resolve('../workflows'), replayName: 'replay-strict-plain', dataConverter: encryptedDataConverter([TEST_SECRETS_KEY]) }, plain)) {
      if (r.error) refused.push(r.workflowId);
    }
    assert.deepEqual(refused.sort(), plain.map((h) => h.workflowId).sort());
  });
});
