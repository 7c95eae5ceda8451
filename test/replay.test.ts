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

  it('replays every recorded history without a determinism violation', async () => {
    installTestRuntime();
    const failures: string[] = [];
    let replayed = 0;
    for await (const r of Worker.runReplayHistories({ workflowsPath: require.resolve('../workflows'), replayName: 'replay-test', dataConverter: encryptedDataConverter([TEST_SECRETS_KEY]) }, histories)) {
      replayed++;
      if (r.error) failures.push(`${r.workflowId}: ${r.error.message}`);
    }
    assert.equal(replayed, histories.length);
    assert.deepEqual(failures, []);
  });
});
