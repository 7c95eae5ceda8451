// Sealing of credentials that must pass through Temporal history (Runway's consumed LiveKit token
// travels from the consume activity to the relay activity): AES-256-GCM, so history only ever holds
// ciphertext. Any worker with the same SESSION_SECRETS_KEY can open it.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const VERSION = 'sb1';

export class SealedBox {
  private readonly key: Buffer;
  constructor(key: Buffer) {
    if (key.length !== 32) throw new Error('SESSION_SECRETS_KEY must be 32 bytes (base64-encoded); generate one with: openssl rand -base64 32');
    this.key = key;
  }

  seal(value: unknown): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const body = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()]);
    return [VERSION, iv.toString('base64url'), body.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
  }

  open<T>(sealed: string): T {
    const [version, iv, body, tag] = sealed.split('.');
    if (version !== VERSION || !iv || !body || !tag) throw new Error('sealed value is malformed');
    const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    const plain = Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]);
    return JSON.parse(plain.toString('utf8')) as T;
  }
}
