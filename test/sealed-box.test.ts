// The sealed box that carries Runway's room credentials through history to the relay: key ids and old
// keys (a relay restarted after a key rotation still opens credentials sealed before it), envelopes
// from before key ids, and full-length authentication tags only.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { keyIdOf } from '../src/secrets/payload-codec';
import { SealedBox } from '../src/secrets/sealed-box';

const creds = { url: 'wss://runway.example', token: 'eyJ-a-room-token', roomName: 'rw-room-1' };

/** An envelope the way the sealed box wrote it before key ids (sb1.<iv>.<body>.<tag>). */
function legacySeal(key: Buffer, value: unknown): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()]);
  return ['sb1', iv.toString('base64url'), body.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
}

describe('SealedBox', () => {
  it('round trips, names the key that sealed, and holds no plaintext', () => {
    const key = randomBytes(32);
    const sealed = new SealedBox(key).seal(creds);
    assert.equal(sealed.split('.')[1], keyIdOf(key));
    assert.ok(!sealed.includes('rw-room-1') && !Buffer.from(sealed.split('.')[3]!, 'base64url').includes(Buffer.from('rw-room-1')));
    assert.deepEqual(new SealedBox([key]).open(sealed), creds);
  });

  it('after a key rotation, opens what the old key sealed; seals with the new one; a missing key is named', () => {
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const sealedBefore = new SealedBox([oldKey]).seal(creds);
    const rotated = new SealedBox([newKey, oldKey]);
    assert.deepEqual(rotated.open(sealedBefore), creds, 'a relay restarted after the rotation still opens the session it was relaying');
    const sealedAfter = rotated.seal(creds);
    assert.equal(sealedAfter.split('.')[1], keyIdOf(newKey));
    assert.deepEqual(new SealedBox([newKey]).open(sealedAfter), creds);
    assert.throws(() => new SealedBox([newKey]).open(sealedBefore), new RegExp(`${keyIdOf(oldKey)}.*SESSION_SECRETS_OLD_KEYS`));
  });

  it('opens envelopes from before key ids with whichever key sealed them', () => {
    const oldKey = randomBytes(32);
    const legacy = legacySeal(oldKey, creds);
    assert.deepEqual(new SealedBox([randomBytes(32), oldKey]).open(legacy), creds);
    assert.throws(() => new SealedBox([randomBytes(32)]).open(legacy));
  });

  it('refuses tampering and truncated authentication tags', () => {
    const key = randomBytes(32);
    const box = new SealedBox(key);
    const parts = box.seal(creds).split('.');
    const tag = Buffer.from(parts[4]!, 'base64url');
    // A 4-byte prefix of the real tag: GCM would accept it as a (weak) tag unless the length is pinned.
    assert.throws(() => box.open([...parts.slice(0, 4), tag.subarray(0, 4).toString('base64url')].join('.')), /malformed/);
    const body = Buffer.from(parts[3]!, 'base64url');
    body[0] = body[0]! ^ 1;
    assert.throws(() => box.open([...parts.slice(0, 3), body.toString('base64url'), parts[4]].join('.')));
    // The same for envelopes from before key ids.
    const legacy = legacySeal(key, creds).split('.');
    const legacyTag = Buffer.from(legacy[3]!, 'base64url');
    assert.throws(() => box.open([...legacy.slice(0, 3), legacyTag.subarray(0, 4).toString('base64url')].join('.')), /malformed/);
    assert.throws(() => box.open('sb9.x.y.z'), /malformed/);
    assert.throws(() => new SealedBox([]), /at least one key/);
    assert.throws(() => new SealedBox(randomBytes(16)), /32 bytes/);
  });
});
