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
    return {
      metadata: Object.fromEntries(Object.entries(p.metadata!).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
      data: Buffer.from(p.data!).toString('base64'),
    };
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
    const other = await fetch(`${base}/codec/decode`, {
      method: 'OPTIONS',
      headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' },
    });
    assert.equal(other.headers.get('access-control-allow-origin'), null);
  });

  it('passes payloads written before encryption through unchanged when the codec allows plaintext (showing them reveals nothing)', async () => {
    const open = Fastify();
    registerCodecRoutes(open, { codec: new AesGcmPayloadCodec([randomBytes(32)], { allowPlaintext: true }), token, allowedOrigins: [ui] });
    const url = await open.listen({ port: 0, host: '127.0.0.1' });
    try {
      const res = await fetch(`${url}/codec/decode`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ payloads: [wire('plain')] }),
      });
      assert.equal(res.status, 200);
      assert.deepEqual(((await res.json()) as { payloads: unknown[] }).payloads, [wire('plain')]);
    } finally {
      await open.close();
    }
  });

  it('without a token only when explicitly open, and then only to direct requests from this machine (no proxy headers)', async () => {
    assert.throws(() => registerCodecRoutes(Fastify(), { codec: new AesGcmPayloadCodec([randomBytes(32)]), allowedOrigins: [ui] }), /need a token/);
    const open = Fastify();
    registerCodecRoutes(open, { codec: new AesGcmPayloadCodec([randomBytes(32)]), allowedOrigins: [ui], openOnLoopback: true });
    const url = await open.listen({ port: 0, host: '127.0.0.1' });
    try {
      const call = (headers: Record<string, string>) =>
        fetch(`${url}/codec/encode`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...headers },
          body: JSON.stringify({ payloads: [wire('x')] }),
        });
      assert.equal((await call({})).status, 200, 'straight from loopback');
      for (const proxied of [
        { 'x-forwarded-for': '203.0.113.7' },
        { forwarded: 'for=203.0.113.7' },
        { via: '1.1 proxy' },
        { 'x-real-ip': '203.0.113.7' },
      ] as Record<string, string>[]) {
        assert.equal((await call(proxied)).status, 401, `through a proxy: ${JSON.stringify(proxied)}`);
      }
    } finally {
      await open.close();
    }
  });

  it('refuses a missing or wrong token, and malformed bodies, with a clear error', async () => {
    assert.equal((await post('decode', { payloads: [] }, {})).status, 401);
    assert.equal((await post('decode', { payloads: [] }, { authorization: 'Bearer nope' })).status, 401);
    const bad = await post('decode', { nope: 1 });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: { message: string } }).error.message, /payloads/);
  });
});
