// The history codec: round trips, key rotation, tampering, refusal of payloads that are not encrypted
// (and their pass-through only when explicitly allowed, for histories written before encryption), and
// the service's own worker refusing plain JSON that someone without the key scheduled on its queue.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { defaultPayloadConverter } from '@temporalio/common';
import { Worker } from '@temporalio/worker';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { AesGcmPayloadCodec, ENCRYPTED_ENCODING, KEY_ID_METADATA, PlaintextPayloadError, keyIdOf } from '../src/secrets/payload-codec';
import { createSessionWorker } from '../src/workers';
import { SESSION_TASK_QUEUE } from '../workflows/shared';
import { TEST_SECRETS_KEY } from './helpers/keys';
import { startTemporal } from './helpers/temporal';
import { eventually } from './helpers/wait';

const text = (b?: Uint8Array | null) => new TextDecoder().decode(b ?? new Uint8Array());

describe('AesGcmPayloadCodec', () => {
  const secret = 'personality: a very private persona 0123456789';
  const plain = defaultPayloadConverter.toPayload({ personality: secret });

  it('encrypts: no plaintext left, key id and encoding in the metadata, and decodes back', async () => {
    const key = randomBytes(32);
    const codec = new AesGcmPayloadCodec([key]);
    const [enc] = await codec.encode([plain]);
    assert.equal(text(enc!.metadata!.encoding), ENCRYPTED_ENCODING);
    assert.equal(text(enc!.metadata![KEY_ID_METADATA]), keyIdOf(key));
    assert.ok(!Buffer.from(enc!.data!).includes(Buffer.from('private persona')));
    const [dec] = await codec.decode([enc!]);
    assert.deepEqual(defaultPayloadConverter.fromPayload(dec!), { personality: secret });
  });

  it('rotates: the new key encrypts, old keys still decrypt; a missing key is named', async () => {
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const [old] = await new AesGcmPayloadCodec([oldKey]).encode([plain]);
    const rotated = new AesGcmPayloadCodec([newKey, oldKey]);
    assert.deepEqual(defaultPayloadConverter.fromPayload((await rotated.decode([old!]))[0]!), { personality: secret });
    const [fresh] = await rotated.encode([plain]);
    assert.equal(text(fresh!.metadata![KEY_ID_METADATA]), keyIdOf(newKey));
    await assert.rejects(new AesGcmPayloadCodec([newKey]).decode([old!]), new RegExp(`${keyIdOf(oldKey)}.*SESSION_SECRETS_OLD_KEYS`));
  });

  it('refuses tampered ciphertext and keys of the wrong size', async () => {
    const codec = new AesGcmPayloadCodec([randomBytes(32)]);
    const [enc] = await codec.encode([plain]);
    const data = Buffer.from(enc!.data!);
    data[20] = data[20]! ^ 0xff;
    await assert.rejects(codec.decode([{ ...enc!, data }]));
    assert.throws(() => new AesGcmPayloadCodec([randomBytes(16)]), /32 bytes/);
  });

  it('refuses payloads that are not encrypted, unless plaintext is explicitly allowed (histories from before encryption)', async () => {
    const key = randomBytes(32);
    await assert.rejects(
      new AesGcmPayloadCodec([key]).decode([plain]),
      (err: Error) => err instanceof PlaintextPayloadError && /not encrypted.*SESSION_ALLOW_PLAINTEXT_PAYLOADS/.test(err.message),
    );
    const noEncoding = { metadata: {}, data: Buffer.from('{"roomName":"x"}') };
    await assert.rejects(new AesGcmPayloadCodec([key]).decode([noEncoding]), PlaintextPayloadError);
    assert.deepEqual(await new AesGcmPayloadCodec([key], { allowPlaintext: true }).decode([plain]), [plain]);
    // Encrypted payloads are read either way.
    const [enc] = await new AesGcmPayloadCodec([key]).encode([plain]);
    assert.deepEqual(defaultPayloadConverter.fromPayload((await new AesGcmPayloadCodec([key]).decode([enc!]))[0]!), { personality: secret });
  });

  it('reads the plain payload Temporal itself writes for an activity cancelled before it started, and only that one', async () => {
    // ACTIVITY_TASK_CANCELED's details when no worker had started the activity (seen in a chaos run:
    // refusing it failed the workflow task on every attempt and the session never ended).
    const notStarted = defaultPayloadConverter.toPayload('ACTIVITY_ID_NOT_STARTED');
    const codec = new AesGcmPayloadCodec([randomBytes(32)]);
    assert.deepEqual(await codec.decode([notStarted]), [notStarted]);
    await assert.rejects(codec.decode([defaultPayloadConverter.toPayload('ACTIVITY_ID_NOT_STARTED ')]), PlaintextPayloadError);
    await assert.rejects(codec.decode([defaultPayloadConverter.toPayload({ detail: 'ACTIVITY_ID_NOT_STARTED' })]), PlaintextPayloadError);
  });

  it('refuses a payload cut short (its last 16 bytes are always the whole tag)', async () => {
    const codec = new AesGcmPayloadCodec([randomBytes(32)]);
    const [enc] = await codec.encode([plain]);
    const data = Buffer.from(enc!.data!);
    await assert.rejects(codec.decode([{ ...enc!, data: data.subarray(0, data.length - 12) }]));
    await assert.rejects(codec.decode([{ ...enc!, data: data.subarray(0, 20) }]), /truncated/);
  });
});

describe('the orchestration worker and plain JSON from someone without the key', () => {
  let env: TestWorkflowEnvironment;
  before(async () => {
    env = await startTemporal(); // its client has no codec: the position of someone who reaches Temporal only
  });
  after(async () => {
    await env?.teardown();
  });

  it('refuses an activity scheduled on its queue with unencrypted input: the activity never runs', async () => {
    // This service's real worker (createSessionWorker: the codec as the worker process wires it). Its
    // Runway and LiveKit point nowhere: nothing here may reach them.
    const ours = await createSessionWorker({
      connection: env.nativeConnection,
      config: {
        runway: { apiKey: `key_${randomBytes(16).toString('hex')}`, baseUrl: 'http://127.0.0.1:9' },
        livekit: { url: 'ws://127.0.0.1:9', publicUrl: 'ws://127.0.0.1:9', apiKey: 'k', apiSecret: randomBytes(32).toString('hex') },
        secretsKey: TEST_SECRETS_KEY,
      },
      shutdownGraceTime: 1000,
    });
    const attacker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: 'someone-elses-queue',
      workflowsPath: require.resolve('./fixtures/foreign-workflows'),
    });
    const workflowId = `attack-${randomBytes(4).toString('hex')}`;
    const failure = await ours.runUntil(
      attacker.runUntil(async () => {
        const handle = await env.client.workflow.start('scheduleOnQueue', {
          taskQueue: 'someone-elses-queue',
          workflowId,
          args: [SESSION_TASK_QUEUE, 'removeServiceParticipants', [{ roomName: 'a-customer-room', identities: ['user-1'] }]],
        });
        try {
          // The activity's failure lands in history (encrypted by our worker: the foreign workflow cannot
          // even read it, and stays stuck on it until terminated).
          return await eventually(
            'the activity task to fail',
            async () => {
              const events = (await handle.fetchHistory()).events ?? [];
              assert.ok(!events.some((e) => e.activityTaskCompletedEventAttributes), 'the activity never completed');
              return events.find((e) => e.activityTaskFailedEventAttributes)?.activityTaskFailedEventAttributes?.failure ?? undefined;
            },
            60_000,
            250,
          );
        } finally {
          await handle.terminate('test over');
        }
      }),
    );
    // Read the failure as an operator, with the key: the worker refused the input before the activity ran.
    assert.ok(failure.encodedAttributes, 'the failure message is encrypted in history');
    const [attrs] = await new AesGcmPayloadCodec([TEST_SECRETS_KEY]).decode([failure.encodedAttributes]);
    const { message } = defaultPayloadConverter.fromPayload<{ message: string }>(attrs!);
    assert.match(message, /^Failed to parse activity args for activity removeServiceParticipants: refused a payload that is not encrypted/);
  });
});
