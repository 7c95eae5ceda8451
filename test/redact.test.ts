// Redaction by value stays bounded: configuration secrets are kept for the life of the process, the
// ones seen at runtime (about three per session) only while they are among the newest, so a
// long-running worker neither grows without end nor slows every log line with every session.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { MAX_RECENT_SECRETS, REDACTED, knownSecretCounts, pinSecret, redactString, registerSecret } from '../src/redact';

const opaque = () => `opaque${randomBytes(12).toString('hex')}`; // matches none of the patterns

describe('redaction', () => {
  it('keeps at most MAX_RECENT_SECRETS runtime secrets (the newest), and every pinned one', () => {
    const config = opaque();
    pinSecret(config);
    const first = opaque();
    registerSecret(first);
    assert.equal(redactString(`x ${first} y`), `x ${REDACTED} y`);
    const sessions = 10_000; // three secrets each, as the Runway client registers them
    let last = '';
    for (let i = 0; i < sessions * 3; i++) registerSecret((last = opaque()));
    const counts = knownSecretCounts();
    assert.ok(counts.recent <= MAX_RECENT_SECRETS, `${counts.recent} runtime secrets remembered`);
    assert.ok(counts.pinned < 50, `${counts.pinned} pinned`);
    assert.equal(redactString(`x ${last} y`), `x ${REDACTED} y`, 'the newest are redacted');
    assert.equal(redactString(`x ${config} y`), `x ${REDACTED} y`, 'configuration secrets are never forgotten');
    assert.equal(redactString(`x ${first} y`), `x ${first} y`, 'the oldest runtime secret was forgotten');
  });

  it('a secret seen again is kept as new; patterns (JWTs, bearer tokens, Runway keys) need no registration', () => {
    const kept = opaque();
    registerSecret(kept);
    for (let i = 0; i < MAX_RECENT_SECRETS - 1; i++) {
      registerSecret(opaque());
      if (i % 500 === 0) registerSecret(kept); // polled again while its session lives
    }
    registerSecret(kept);
    for (let i = 0; i < MAX_RECENT_SECRETS - 1; i++) registerSecret(opaque());
    assert.equal(redactString(kept), REDACTED);
    const jwt = `eyJ${'a'.repeat(20)}.${'b'.repeat(20)}.${'c'.repeat(20)}`;
    assert.equal(redactString(`token ${jwt}`), `token ${REDACTED}`);
    assert.equal(redactString('Authorization: Bearer abcdefghijkl'), `Authorization: Bearer ${REDACTED}`);
    assert.equal(redactString(`key_${'A'.repeat(20)}`), REDACTED);
  });
});
