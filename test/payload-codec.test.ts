// The history codec on its own: round trips, key rotation, tampering, and pass-through of payloads
// written before encryption was turned on.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { defaultPayloadConverter } from '@temporalio/common';
import { AesGcmPayloadCodec, ENCRYPTED_ENCODING, KEY_ID_METADATA, keyIdOf } from '../src/secrets/payload-codec';

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

  it('passes through payloads that were never encrypted', async () => {
    const codec = new AesGcmPayloadCodec([randomBytes(32)]);
    assert.deepEqual(await codec.decode([plain]), [plain]);
  });
});
