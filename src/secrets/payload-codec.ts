// Encryption of everything this service puts in Temporal history: workflow inputs and results,
// activity arguments and results, heartbeat details, signals, queries, updates and (with
// `encodeCommonAttributes`) failure messages and stack traces. AES-256-GCM per payload; the key id
// rides in the payload's metadata so keys can rotate: the first key encrypts, every listed key
// decrypts.
//
// Inbound payloads that are not encrypted are refused: whoever can reach Temporal but does not hold
// the key cannot hand this service's workers plain JSON (an activity scheduled on `avatar-sessions`
// from a workflow of their own, a start or signal from the CLI). `allowPlaintext` (the environment's
// SESSION_ALLOW_PLAINTEXT_PAYLOADS=1) lets them through for histories written before the codec.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import type { Payload, PayloadCodec } from '@temporalio/common';
import type { DataConverter } from '@temporalio/common';
import { temporal } from '@temporalio/proto';

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A key's id: not secret (a hash prefix), stable, so a rotated-out key is still found by id. */
export function keyIdOf(key: Buffer): string {
  return `k-${createHash('sha256').update(key).digest('hex').slice(0, 12)}`;
}

export interface PayloadCodecOptions {
  /**
   * Let payloads that are not encrypted through `decode` unchanged (default: refuse them). Only for
   * replaying or reading histories written before encryption was turned on.
   */
  allowPlaintext?: boolean;
}

/** The error `decode` throws for a payload that is not encrypted (and plaintext is not allowed). */
export class PlaintextPayloadError extends Error {
  override readonly name = 'PlaintextPayloadError';
}

const TAG_BYTES = 16;

export class AesGcmPayloadCodec implements PayloadCodec {
  private readonly keys = new Map<string, Buffer>();
  readonly activeKeyId: string;
  readonly allowPlaintext: boolean;

  /** `keys[0]` encrypts; all of them decrypt (keep old keys here until no history needs them). */
  constructor(keys: Buffer[], opts: PayloadCodecOptions = {}) {
    this.allowPlaintext = opts.allowPlaintext === true;
    if (!keys.length) throw new Error('AesGcmPayloadCodec needs at least one key');
    for (const k of keys) {
      if (k.length !== 32) throw new Error('SESSION_SECRETS_KEY (and each old key) must be 32 bytes, base64-encoded: openssl rand -base64 32');
      this.keys.set(keyIdOf(k), k);
    }
    this.activeKeyId = keyIdOf(keys[0]!);
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    const key = this.keys.get(this.activeKeyId)!;
    return payloads.map((p) => {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
      const plain = temporal.api.common.v1.Payload.encode(p).finish();
      const body = Buffer.concat([cipher.update(plain), cipher.final()]);
      return {
        metadata: { encoding: enc.encode(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: enc.encode(this.activeKeyId) },
        data: Buffer.concat([iv, body, cipher.getAuthTag()]),
      };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      const encoding = p.metadata?.encoding ? dec.decode(p.metadata.encoding) : undefined;
      if (encoding !== ENCRYPTED_ENCODING) {
        if (this.allowPlaintext || isWrittenByTemporal(p, encoding)) return p;
        throw new PlaintextPayloadError(
          `refused a payload that is not encrypted (encoding ${encoding ?? 'none'}): everything this service reads from Temporal must be written with SESSION_SECRETS_KEY; set SESSION_ALLOW_PLAINTEXT_PAYLOADS=1 only to read histories from before encryption`,
        );
      }
      const keyId = p.metadata?.[KEY_ID_METADATA] ? dec.decode(p.metadata[KEY_ID_METADATA]) : '';
      const key = this.keys.get(keyId);
      if (!key) throw new Error(`payload encrypted with key ${keyId}, which this process does not have: add the old key to SESSION_SECRETS_OLD_KEYS`);
      const data = Buffer.from(p.data ?? new Uint8Array());
      if (data.length < 12 + TAG_BYTES) throw new Error('encrypted payload is truncated');
      const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, 12), { authTagLength: TAG_BYTES });
      decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
      const plain = Buffer.concat([decipher.update(data.subarray(12, data.length - TAG_BYTES)), decipher.final()]);
      return temporal.api.common.v1.Payload.decode(plain);
    });
  }
}

/**
 * Payloads the Temporal server writes itself, in plain JSON, into a workflow's history: an activity
 * cancelled before any worker started it is recorded as ACTIVITY_TASK_CANCELED with the details
 * `"ACTIVITY_ID_NOT_STARTED"`. Refusing it failed the workflow task on every attempt (a relay session
 * ended while no media worker had picked up its relay stayed open for good, seen in a chaos run). These
 * exact values carry nothing anyone could use, so they pass; any other plain payload is refused.
 */
const TEMPORAL_WRITTEN = new Set(['"ACTIVITY_ID_NOT_STARTED"']);

function isWrittenByTemporal(p: Payload, encoding: string | undefined): boolean {
  return encoding === 'json/plain' && TEMPORAL_WRITTEN.has(dec.decode(p.data ?? new Uint8Array()));
}

/** Workflow bundles must be built with this too (bundleWorkflowCode's failureConverterPath). */
export const FAILURE_CONVERTER_PATH = require.resolve('./failure-converter');

/** The data converter every client and worker of this service uses. */
export function encryptedDataConverter(keys: Buffer[], opts: PayloadCodecOptions = {}): DataConverter {
  return {
    payloadCodecs: [new AesGcmPayloadCodec(keys, opts)],
    failureConverterPath: FAILURE_CONVERTER_PATH,
  };
}
