// Sealing of credentials that must pass through Temporal history (Runway's consumed LiveKit token
// travels from the consume activity to the relay activity): AES-256-GCM, so history only ever holds
// ciphertext. Any worker with the same SESSION_SECRETS_KEY can open it.
//
// Keys rotate like the payload codec's: the envelope names the key that sealed it
// (`sb2.<keyId>.<iv>.<body>.<tag>`), the first key seals, and every key given (the current one and
// SESSION_SECRETS_OLD_KEYS) opens, so a relay restarted after a rotation still opens credentials
// sealed before it. Envelopes from before key ids (`sb1.<iv>.<body>.<tag>`) are opened with each key.
import { createCipheriv, createDecipheriv, randomBytes, type DecipherGCM } from 'node:crypto';
import { keyIdOf } from './payload-codec';

const VERSION = 'sb2';
const LEGACY_VERSION = 'sb1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

export class SealedBox {
  private readonly keys = new Map<string, Buffer>();
  private readonly activeKeyId: string;

  /** `keys[0]` (or the single key) seals; every key opens. */
  constructor(keys: Buffer | Buffer[]) {
    const list = Array.isArray(keys) ? keys : [keys];
    if (!list.length) throw new Error('SealedBox needs at least one key');
    for (const k of list) {
      if (k.length !== 32)
        throw new Error('SESSION_SECRETS_KEY (and each old key) must be 32 bytes (base64-encoded); generate one with: openssl rand -base64 32');
      this.keys.set(keyIdOf(k), k);
    }
    this.activeKeyId = keyIdOf(list[0]!);
  }

  seal(value: unknown): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.keys.get(this.activeKeyId)!, iv, { authTagLength: TAG_BYTES });
    const body = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()]);
    return [VERSION, this.activeKeyId, iv.toString('base64url'), body.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
  }

  open<T>(sealed: string): T {
    const parts = sealed.split('.');
    if (parts[0] === VERSION && parts.length === 5) {
      const [, keyId, iv, body, tag] = parts as [string, string, string, string, string];
      const key = this.keys.get(keyId);
      if (!key) throw new Error(`sealed with key ${keyId}, which this process does not have: add the old key to SESSION_SECRETS_OLD_KEYS`);
      return decrypt<T>(key, iv, body, tag);
    }
    if (parts[0] === LEGACY_VERSION && parts.length === 4) {
      const [, iv, body, tag] = parts as [string, string, string, string];
      let lastError: unknown;
      for (const key of this.keys.values()) {
        try {
          return decrypt<T>(key, iv, body, tag);
        } catch (err) {
          lastError = err;
        }
      }
      throw lastError instanceof Error ? lastError : new Error('sealed value could not be opened');
    }
    throw new Error('sealed value is malformed');
  }
}

function decrypt<T>(key: Buffer, iv: string, body: string, tag: string): T {
  const ivBytes = Buffer.from(iv, 'base64url');
  const tagBytes = Buffer.from(tag, 'base64url');
  // A shorter tag would be checked as a truncated one: a forgery then needs far fewer guesses.
  if (ivBytes.length !== IV_BYTES || tagBytes.length !== TAG_BYTES) throw new Error('sealed value is malformed');
  const decipher: DecipherGCM = createDecipheriv('aes-256-gcm', key, ivBytes, { authTagLength: TAG_BYTES });
  decipher.setAuthTag(tagBytes);
  const plain = Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]);
  return JSON.parse(plain.toString('utf8')) as T;
}
