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
import type { Payload } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { AesGcmPayloadCodec, ENCRYPTED_ENCODING, encryptedDataConverter } from '../src/secrets/payload-codec';
import { NO_TRACING_SINKS, WORKFLOW_INTERCEPTOR_MODULES } from '../src/tracing';

/** What every worker of the service runs the workflows with: the workflow interceptor modules (src/tracing.ts). */
const WORKFLOWS = {
  workflowsPath: require.resolve('../workflows'),
  interceptors: { workflowModules: [...WORKFLOW_INTERCEPTOR_MODULES] },
  sinks: NO_TRACING_SINKS,
};

describe('replay of recorded session histories', () => {
  const histories = loadHistories();

  it('has recorded histories to replay', () => {
    assert.ok(histories.length >= 5, `expected recorded histories in ${HISTORY_DIR}, found ${histories.length}`);
  });

  /**
   * The same history with every payload decrypted: what a history written without the codec looks
   * like (plain JSON payloads). Made here from the recordings, so the refusal is tested on real shapes.
   */
  async function withPlaintextPayloads(history: temporal.api.history.v1.IHistory): Promise<temporal.api.history.v1.IHistory> {
    const codec = new AesGcmPayloadCodec([TEST_SECRETS_KEY]);
    const clone = temporal.api.history.v1.History.decode(temporal.api.history.v1.History.encode(history).finish());
    const isEncrypted = (v: unknown): v is Payload => {
      const enc = (v as Payload | null)?.metadata?.encoding;
      return !!enc && Buffer.from(enc).toString() === ENCRYPTED_ENCODING;
    };
    const visit = async (o: Record<string, unknown>): Promise<void> => {
      for (const [k, v] of Object.entries(o)) {
        if (!v || typeof v !== 'object' || v instanceof Uint8Array) continue;
        if (isEncrypted(v)) o[k] = (await codec.decode([v]))[0];
        else await visit(v as Record<string, unknown>);
      }
    };
    await visit(clone as unknown as Record<string, unknown>);
    return clone;
  }

  it('replays every recorded history without a determinism violation', async () => {
    installTestRuntime();
    const failures: string[] = [];
    let replayed = 0;
    for await (const r of Worker.runReplayHistories(
      { ...WORKFLOWS, replayName: 'replay-test', dataConverter: encryptedDataConverter([TEST_SECRETS_KEY]) },
      histories,
    )) {
      replayed++;
      if (r.error) failures.push(`${r.workflowId}: ${r.error.message}`);
    }
    assert.equal(replayed, histories.length);
    assert.deepEqual(failures, []);
  });

  it('plain JSON payloads (a history written without the codec) are refused by default, replayed with allowPlaintext', async () => {
    installTestRuntime();
    const plain = await Promise.all(
      histories
        .filter((h) => h.workflowId.startsWith('session-'))
        .slice(0, 3)
        .map(async (h) => ({ workflowId: `plain-${h.workflowId}`, history: await withPlaintextPayloads(h.history) })),
    );
    assert.equal(plain.length, 3);
    const refused: string[] = [];
    for await (const r of Worker.runReplayHistories(
      { ...WORKFLOWS, replayName: 'replay-strict-plain', dataConverter: encryptedDataConverter([TEST_SECRETS_KEY]) },
      plain,
    )) {
      if (r.error) refused.push(r.workflowId);
    }
    assert.deepEqual(refused.sort(), plain.map((h) => h.workflowId).sort());
    const failures: string[] = [];
    for await (const r of Worker.runReplayHistories(
      { ...WORKFLOWS, replayName: 'replay-allow-plain', dataConverter: encryptedDataConverter([TEST_SECRETS_KEY], { allowPlaintext: true }) },
      plain,
    )) {
      if (r.error) failures.push(`${r.workflowId}: ${r.error.message}`);
    }
    assert.deepEqual(failures, []);
  });
});
