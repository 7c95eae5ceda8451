// Temporal's remote codec protocol (POST {prefix}/encode and {prefix}/decode, body
// `{payloads:[{metadata:{k: base64}, data: base64}]}`), so the Temporal UI and CLI can show the
// encrypted history of a session to an operator. CORS admits the Temporal UI's origin.
//
// /decode decrypts any history: it takes the operator's token (SESSION_CODEC_TOKEN), never the API
// token the backends hold. `temporal --codec-endpoint URL --codec-auth "Bearer $SESSION_CODEC_TOKEN"`.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { z } from 'zod';
import { bearerChecker } from './auth';
import { directLocalRequest } from './local-request';

export interface CodecRoutesOptions {
  codec: PayloadCodec;
  /** Bearer token required on every call (the operator's SESSION_CODEC_TOKEN). */
  token?: string;
  /**
   * No token, but only for requests straight from this machine (no proxy headers): the fully
   * embedded dev stack, whose Temporal UI cannot send one. Either this or `token` must be given.
   */
  openOnLoopback?: boolean;
  /** Origins allowed to call from a browser (the Temporal UI), e.g. http://127.0.0.1:8233. */
  allowedOrigins: string[];
  prefix?: string;
}

const wirePayloads = z.object({
  payloads: z.array(z.object({ metadata: z.record(z.string(), z.string()).optional(), data: z.string().optional() })),
});
type WirePayloads = z.infer<typeof wirePayloads>;

const fromWire = (p: WirePayloads['payloads'][number]): Payload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
  data: Buffer.from(p.data ?? '', 'base64'),
});
const toWire = (p: Payload) => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? new Uint8Array()).toString('base64')])),
  data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
});

export function registerCodecRoutes(app: FastifyInstance, opts: CodecRoutesOptions): void {
  const prefix = opts.prefix ?? '/codec';
  const tokenOk = bearerChecker(opts.token);
  if (!tokenOk && opts.openOnLoopback !== true)
    throw new Error('the codec routes need a token (SESSION_CODEC_TOKEN) or, for the embedded dev stack only, openOnLoopback');
  const allowed = (req: FastifyRequest): boolean => (tokenOk ? tokenOk(req.headers.authorization) : directLocalRequest(req));

  const cors = (req: FastifyRequest, reply: FastifyReply): void => {
    const origin = req.headers.origin;
    if (origin && opts.allowedOrigins.includes(origin)) {
      reply.header('access-control-allow-origin', origin);
      reply.header('vary', 'origin');
      reply.header('access-control-allow-credentials', 'true');
      reply.header('access-control-allow-methods', 'POST, OPTIONS');
      reply.header('access-control-allow-headers', 'content-type, x-namespace, authorization');
    }
  };

  for (const op of ['encode', 'decode'] as const) {
    app.options(`${prefix}/${op}`, async (req, reply) => {
      cors(req, reply);
      return reply.code(204).send();
    });
    app.post(`${prefix}/${op}`, async (req, reply) => {
      cors(req, reply);
      if (!allowed(req)) {
        return reply.code(401).send({
          error: {
            code: 'unauthorized',
            message: tokenOk
              ? 'missing or wrong bearer token: send Authorization: Bearer $SESSION_CODEC_TOKEN'
              : 'the open codec answers direct requests from this machine only',
          },
        });
      }
      const body = wirePayloads.safeParse(req.body);
      if (!body.success) {
        return reply.code(400).send({
          error: {
            code: 'invalid_request',
            message: `payloads: ${body.error.issues[0]?.message ?? 'invalid'}; send {"payloads":[{"metadata":{...},"data":"<base64>"}]}`,
          },
        });
      }
      try {
        const payloads = body.data.payloads.map(fromWire);
        const out = op === 'encode' ? await opts.codec.encode(payloads) : await opts.codec.decode(payloads);
        return reply.send({ payloads: out.map(toWire) });
      } catch (err) {
        return reply.code(400).send({ error: { code: `${op}_failed`, message: (err as Error).message } });
      }
    });
  }
}
