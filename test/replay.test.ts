// Determinism guard: histories recorded from real runs of every path (test/histories/*.json, written
// by `RECORD_HISTORIES=1 npm test`) must replay against the current workflow code. A change that
// breaks replay of in-flight sessions fails here; version it with workflow.patched() instead.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Worker } from '@temporalio/worker';
import { installTestRuntime } from './helpers/temporal';

const dir = path.join(__dirname, 'histories');

describe('replay of recorded session histories', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();

  it('has recorded histories to replay', () => {
    assert.ok(files.length >= 5, `expected recorded histories in ${dir}, found ${files.length}`);
  });

  it('replays every recorded history without a determinism violation', async () => {
    installTestRuntime();
    const histories = files.map((f) => ({ workflowId: f.replace(/\.json$/, ''), history: JSON.parse(readFileSync(path.join(dir, f), 'utf8')) }));
    const failures: string[] = [];
    let replayed = 0;
    for await (const r of Worker.runReplayHistories({ workflowsPath: require.resolve('../workflows'), replayName: 'replay-test' }, histories)) {
      replayed++;
      if (r.error) failures.push(`${r.workflowId}: ${r.error.message}`);
    }
    assert.equal(replayed, files.length);
    assert.deepEqual(failures, []);
  });
});
