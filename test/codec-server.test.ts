// The remote codec endpoints the Temporal UI calls, over a real socket.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { defaultPayloadConverter } from '@temporalio/common';
import { registerCodecRoutes } from '../src/api/codec-routes';
import { AesGcmPayloadCodec } from '../src/secrets/payload-codec';

describe('codec server', () => {
  let app: FastifyInstance;
  let base: string;
  const token = randomBytes(16).toString('hex');
  const ui = 'http://127.0.0.1:8233';
  before(async () => {
    app = Fastify();
    registerCodecRoutes(app, { codec: new AesGcmPayloadCodec([randomBytes(32)]), token, allowedOrigins: [ui] });
    base = await app.listen({ port: 0, host: '127.0.0.1' });
  });
  after(async () => {
    await app.close();
  });

  const post = (op: string, body: unknown, headers: Record<string, string> = { authorization: `Bearer ${token}` }) =>
    fetch(`${base}/codec/${op}`, { method: 'POST', headers: { 'content-type': 'application/json', origin: ui, ...headers }, body: JSON.stringify(body) });
  const wire = (value: unknown) => {
    const p = defaultPayloadConverter.toPayload(value);
    return { metadata: Object.fromEntries(Object.entries(p.metadata!).map(([k, v]) => [k, Buffer.from(v!).toString('base64')])), data: Buffer.from(p.data!).toString('base64') };
  };

  it('encodes and decodes back what the UI sends, and admits the UI origin', async () => {
    const enc = await post('encode', { payloads: [wire({ personality: 'secret persona' })] });
    assert.equal(enc.status, 200);
    assert.equal(enc.headers.get('access-control-allow-origin'), ui);
    const encoded = (await enc.json()) as { payloads: { metadata: Record<string, string>; data: string }[] };
    assert.equal(Buffer.from(encoded.payloads[0]!.metadata.encoding!, 'base64').toString(), 'binary/encrypted');
    assert.ok(!Buffer.from(encoded.payloads[0]!.data, 'base64').includes(Buffer.from('secret persona')));
    const dec = await post('decode', encoded);
    const decoded = (await dec.json()) as { payloads: { data: string }[] };
    assert.deepEqual(JSON.parse(Buffer.from(decoded.payloads[0]!.data, 'base64').toString()), { personality: 'secret persona' });
  });

  it('answers the browser preflight for the UI origin only', async () => {
    const ok = await fetch(`${base}/codec/decode`, { method: 'OPTIONS', headers: { origin: ui, 'access-control-request-method': 'POST' } });
    assert.equal(ok.status, 204);
    assert.match(ok.headers.get('access-control-allow-headers') ?? '', /x-namespace/);
    const other = await fetch(`${base}/codec/decode`, { method: 'OPTIONS', headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' } });
    assert.equal(other.headers.get('access-control-allow-origin'), null);
  });

  it('refuses a missing or wrong token, and malformed bodies, with a clear error', async () => {
    assert.equal((await post('decode', { payloads: [] }, {})).status, 401);
    assert.equal((await post('decode', { payloads: [] }, { authorization: 'Bearer nope' })).status, 401);
    const bad = await post('decode', { nope: 1 });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: { message: string } }).error.message, /payloads/);
  });
});
