// Configuration the service refuses to start with: placeholder secrets from the example files (which
// LiveKit or Runway might well accept), a LiveKit secret too short for LiveKit, one token for both the
// API and the codec; and the switches that default to off.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, envSchema, isPlaceholder, loadEnv, requireServiceConfig } from '../src/config';

const ROOT = path.resolve(__dirname, '..');
const real = () => ({
  RUNWAYML_API_SECRET: `key_${randomBytes(24).toString('hex')}`,
  LIVEKIT_URL: 'wss://lk.example.test',
  LIVEKIT_API_KEY: 'prodkey',
  LIVEKIT_API_SECRET: randomBytes(32).toString('base64'),
  SESSION_SECRETS_KEY: randomBytes(32).toString('base64'),
  SESSION_API_TOKEN: randomBytes(32).toString('hex'),
  SESSION_CODEC_TOKEN: randomBytes(32).toString('hex'),
});

describe('configuration', () => {
  it('accepts generated secrets; timing overrides, plaintext payloads are off unless switched on', () => {
    const env = loadEnv(real());
    assert.equal(env.API_ALLOW_TIMING_OVERRIDES, false);
    assert.equal(env.SESSION_ALLOW_PLAINTEXT_PAYLOADS, false);
    assert.equal(env.API_METRICS_PORT, 9465);
    assert.equal(requireServiceConfig(env).allowPlaintextPayloads, false);
    const on = loadEnv({ ...real(), API_ALLOW_TIMING_OVERRIDES: '1', SESSION_ALLOW_PLAINTEXT_PAYLOADS: 'true' });
    assert.equal(on.API_ALLOW_TIMING_OVERRIDES, true);
    assert.equal(requireServiceConfig(on).allowPlaintextPayloads, true);
    assert.throws(() => loadEnv({ ...real(), API_ALLOW_TIMING_OVERRIDES: 'yes please' }), /API_ALLOW_TIMING_OVERRIDES: must be 1 or 0/);
  });

  it("refuses to start on the example files' placeholder secrets (the old 47-character LiveKit one included)", () => {
    const oldExample = 'change-me-to-a-secret-of-at-least-32-characters'; // long enough for LiveKit: that was the problem
    for (const [name, value] of [
      ['LIVEKIT_API_SECRET', oldExample],
      ['RUNWAYML_API_SECRET', 'key_your_runway_api_key'],
      ['SESSION_API_TOKEN', 'replace-with-a-long-random-token'],
      ['SESSION_CODEC_TOKEN', '<your codec token goes here>'],
      ['SESSION_API_TOKEN', 'xxxxxxxxxxxxxxxxxxxxxxxx'],
    ] as const) {
      assert.throws(
        () => loadEnv({ ...real(), [name]: value }),
        (err: Error) => err instanceof ConfigError && err.message.includes(`${name}: looks like a placeholder`),
        `${name}=${value}`,
      );
    }
    assert.throws(() => loadEnv({ ...real(), LIVEKIT_API_SECRET: 'short-but-random-93kd' }), /LIVEKIT_API_SECRET: must be at least 32 characters/);
    const same = randomBytes(32).toString('hex');
    assert.throws(() => loadEnv({ ...real(), SESSION_API_TOKEN: same, SESSION_CODEC_TOKEN: same }), /SESSION_CODEC_TOKEN: must differ from SESSION_API_TOKEN/);
    for (let i = 0; i < 200; i++) assert.equal(isPlaceholder(randomBytes(32).toString(i % 2 ? 'hex' : 'base64')), false);
  });

  it('the example env files carry no usable secret: every secret is left empty', () => {
    const dir = path.join(ROOT, 'deploy');
    const secretName = /SECRET|PASSWORD|PWD|TOKEN|_KEYS$|SECRETS_KEY|OLD_KEYS/;
    const found: string[] = [];
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.env.example'))) {
      for (const line of readFileSync(path.join(dir, f), 'utf8').split('\n')) {
        const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
        if (m && secretName.test(m[1]!) && m[2]!.trim() !== '') found.push(`${f}: ${m[1]}=${m[2]}`);
      }
    }
    assert.deepEqual(found, []);
  });

  it('the media worker needs no Runway key; the orchestration worker does', () => {
    const { RUNWAYML_API_SECRET: _omit, ...noRunway } = real();
    const env = loadEnv(noRunway);
    assert.throws(() => requireServiceConfig(env), /RUNWAYML_API_SECRET/);
    assert.equal(requireServiceConfig(env, { runway: false }).runway.apiKey, '');
  });
});

describe('docs/configuration.md', () => {
  it('documents every variable the service reads', () => {
    const doc = readFileSync(path.join(__dirname, '..', 'docs', 'configuration.md'), 'utf8');
    const missing = Object.keys(envSchema.shape).filter(
      (name) =>
        !doc.includes(`\`${name}\``) &&
        !doc.includes(`\`${name.replace(/_[A-Z0-9]+$/, '')}*\``) &&
        !(name.startsWith('RUNWAY_SIM_') && doc.includes('`RUNWAY_SIM_*`')),
    );
    assert.deepEqual(missing, [], 'variables read by src/config.ts but not in docs/configuration.md');
  });
});
