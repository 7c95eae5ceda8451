// OpenTelemetry traces of one session, end to end over the real stack (Temporal dev server, two
// LiveKit servers, the Runway simulator, in-process workers, the HTTP API on a socket), exported to an
// in-memory exporter: `POST /v1/sessions` is the root, StartWorkflow its child, the workflow run the
// child of that, every activity (local ones too) under the run, all in one trace. Also: log lines carry
// the trace id, the tracing interceptors do not change what the workflow does (histories replay with
// and without them), and tracing stays off when the OTEL_* variables do not ask for it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { SpanKind } from '@opentelemetry/api';
import { Worker } from '@temporalio/worker';
import { startApiServer } from '../src/api/server';
import { ConfigError, loadEnv } from '../src/config';
import { createLogger } from '../src/log';
import { encryptedDataConverter } from '../src/secrets/payload-codec';
import { NO_TRACING_SINKS, WORKFLOW_INTERCEPTOR_MODULES, startTracing, tracingSettings, type Tracing } from '../src/tracing';
import { SessionsClient } from '../src/client/sessions';
import { ACTIVITY_POLICIES } from '../workflows/session/activities';
import { sessionWorkflowId } from '../workflows/shared';
import { TEST_SECRETS_KEY } from './helpers/keys';
import { startSessionStack, uniqueId, type SessionStack } from './helpers/session-stack';
import { eventually, withTimeout } from './helpers/wait';

const timing = { readyDeadlineSeconds: 20, avatarJoinTimeoutSeconds: 8, monitorIntervalSeconds: 2, endCallGraceSeconds: 3, heartbeatTimeoutSeconds: 5 };
const LOCAL_ACTIVITIES = new Set(
  Object.entries(ACTIVITY_POLICIES)
    .filter(([, p]) => 'local' in p && p.local)
    .map(([name]) => name),
);

/** The spans of one trace as an indented tree: name, span id, parent id (what the closing note shows). */
function printTree(spans: ReadableSpan[]): string {
  const byParent = new Map<string | undefined, ReadableSpan[]>();
  const ids = new Set(spans.map((s) => s.spanContext().spanId));
  for (const s of spans) {
    const parent = s.parentSpanId && ids.has(s.parentSpanId) ? s.parentSpanId : undefined;
    byParent.set(parent, [...(byParent.get(parent) ?? []), s]);
  }
  const lines: string[] = [`trace ${spans[0]?.spanContext().traceId}`];
  const walk = (parent: string | undefined, depth: number) => {
    const children = (byParent.get(parent) ?? []).sort((a, b) => a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1]);
    for (const s of children) {
      lines.push(`${'  '.repeat(depth)}${s.name}  span=${s.spanContext().spanId} parent=${s.parentSpanId ?? '-'} (${s.resource.attributes['service.name']})`);
      walk(s.spanContext().spanId, depth + 1);
    }
  };
  walk(undefined, 1);
  return lines.join('\n');
}

describe('OpenTelemetry traces', () => {
  const exporter = new InMemorySpanExporter();
  let tracing: Tracing;
  let stack: SessionStack;
  let base: string;
  let close: () => Promise<void>;
  const token = randomBytes(24).toString('hex');
  const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const logLines: string[] = [];
  let conversationId: string;

  before(async () => {
    tracing = (await startTracing(undefined, { serviceName: 'tracing-test', exporter }))!;
    stack = await startSessionStack({ tracing, sim: { defaults: { provisioningMs: 100, avatarMedia: 'light' } } });
    const sink = new Writable({
      write(chunk, _enc, cb) {
        logLines.push(String(chunk));
        cb();
      },
    });
    const api = await startApiServer({
      config: { apiToken: token, apiPort: 0, livekit: stack.config.livekit },
      sessions: stack.sessions,
      log: createLogger({ level: 'info', destination: sink }),
      port: 0,
      waitLiveMs: 30_000,
      allowTimingOverrides: true,
      tracer: tracing.tracer,
    });
    base = api.url;
    close = api.close;
  });
  after(async () => {
    await close?.();
    await stack?.stop();
    await tracing?.shutdown();
  });

  it('one session over HTTP is one trace: the API span, StartWorkflow, RunWorkflow and every activity, parent by parent', async () => {
    conversationId = uniqueId('trace');
    const body = {
      conversationId,
      avatar: { type: 'runway-preset', presetId: 'cooking-teacher' },
      livekit: { roomName: `room-${conversationId}` },
      mode: 'direct',
      timing,
    };
    const res = await fetch(`${base}/v1/sessions?wait=live`, { method: 'POST', headers: auth, body: JSON.stringify(body) });
    const started = (await res.json()) as { phase?: string; runId: string };
    assert.equal(res.status, 201, JSON.stringify(started));
    assert.equal(started.phase, 'live');
    const end = await fetch(`${base}/v1/sessions/${conversationId}/end`, { method: 'POST', headers: { authorization: auth.authorization } });
    assert.equal(end.status, 202);
    await withTimeout(stack.env.client.workflow.getHandle(sessionWorkflowId(conversationId)).result(), 60_000, 'the session to end');

    // Workflow spans leave the sandbox through the sink after the task that ends them; a cancelled
    // activity (the live session's monitor) ends its span once it has seen the cancellation.
    const isRun = (s: ReadableSpan) => s.name === 'RunWorkflow:avatarSession' && s.attributes.workflowId === sessionWorkflowId(conversationId);
    const spans = await eventually(
      "the run span and every scheduled activity's run span to be exported",
      async () => {
        await tracing.forceFlush();
        const all = exporter.getFinishedSpans();
        const run = all.find(isRun);
        if (!run) return undefined;
        const inRun = all.filter((s) => s.spanContext().traceId === run.spanContext().traceId);
        const open = inRun.filter((s) => s.name.startsWith('StartActivity:') && !inRun.some((r) => r.parentSpanId === s.spanContext().spanId));
        return open.length ? undefined : all;
      },
      60_000,
    );

    const apiSpan = spans.find((s) => s.name === 'POST /v1/sessions' && s.kind === SpanKind.SERVER);
    assert.ok(apiSpan, 'the API has a server span for POST /v1/sessions');
    const traceId = apiSpan.spanContext().traceId;
    const trace = spans.filter((s) => s.spanContext().traceId === traceId);

    console.log(printTree(trace));
    assert.equal(apiSpan.parentSpanId, undefined, 'the API span is the root (the caller sent no traceparent)');
    assert.equal(apiSpan.attributes['http.route'], '/v1/sessions');
    assert.equal(apiSpan.attributes['http.response.status_code'], 201);

    const byId = new Map(trace.map((s) => [s.spanContext().spanId, s]));
    const parentOf = (s: ReadableSpan) => (s.parentSpanId ? byId.get(s.parentSpanId) : undefined);
    const one = (name: string) => {
      const found = trace.filter((s) => s.name === name);
      assert.equal(found.length, 1, `one ${name} span in the trace (found ${found.length})`);
      return found[0]!;
    };
    // Every span but the root has its parent in this trace: one tree, nothing dangling.
    for (const s of trace) if (s !== apiSpan) assert.ok(parentOf(s), `${s.name}'s parent ${s.parentSpanId} is in the trace`);

    const startWorkflow = one('StartWorkflow:avatarSession');
    assert.equal(parentOf(startWorkflow), apiSpan);
    const run = one('RunWorkflow:avatarSession');
    assert.equal(parentOf(run), startWorkflow);
    assert.equal(run.attributes.runId, started.runId);
    // Ids, type, queue: not the memo, search attributes or anything else of the workflow's info.
    assert.deepEqual(Object.keys(run.attributes).sort(), ['attempt', 'namespace', 'runId', 'taskQueue', 'workflowId', 'workflowType']);
    // ?wait=live is an update, traced from the same request into the workflow's handler.
    const waitLive = one('StartWorkflowUpdate:waitLive');
    assert.equal(parentOf(waitLive), apiSpan);
    assert.equal(parentOf(one('HandleUpdate:waitLive')), waitLive);

    // Activities: each scheduled one (StartActivity, in the workflow) under the run, its execution
    // (RunActivity, in the worker) under that; local activities the same way.
    const scheduled = trace.filter((s) => s.name.startsWith('StartActivity:'));
    for (const s of scheduled) {
      assert.equal(parentOf(s), run, `${s.name} is scheduled by the run`);
      const runs = trace.filter((r) => r.name === `RunActivity:${s.name.slice('StartActivity:'.length)}` && r.parentSpanId === s.spanContext().spanId);
      assert.ok(runs.length >= 1, `${s.name} has its RunActivity child`);
    }
    const names = new Set(scheduled.map((s) => s.name.slice('StartActivity:'.length)));
    for (const activity of ['createRunwaySession', 'sendEndCallToAvatar', 'removeServiceParticipants'])
      assert.ok(names.has(activity), `${activity} is traced (traced: ${[...names].join(', ')})`);
    assert.ok(
      [...names].some((n) => LOCAL_ACTIVITIES.has(n)),
      'local activities are traced',
    );
    assert.ok(
      [...names].some((n) => !LOCAL_ACTIVITIES.has(n)),
      'regular activities are traced',
    );

    // The end request is a trace of its own: its signal is handled in the workflow under it.
    const endSpan = spans.find((s) => s.name === 'POST /v1/sessions/:conversationId/end');
    assert.ok(endSpan);
    const endTrace = spans.filter((s) => s.spanContext().traceId === endSpan.spanContext().traceId);
    const signal = endTrace.find((s) => s.name === 'SignalWorkflow:end');
    assert.equal(signal?.parentSpanId, endSpan.spanContext().spanId);
    assert.equal(endTrace.find((s) => s.name === 'HandleSignal:end')?.parentSpanId, signal.spanContext().spanId);

    // The API's log line for the request names the trace.
    const line = logLines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.msg === 'request' && l.route === '/v1/sessions' && l.method === 'POST');
    assert.equal(line?.trace_id, traceId);
    assert.equal(line?.span_id, apiSpan.spanContext().spanId);
  });

  it("a caller's traceparent is continued: the API span is its child", async () => {
    const parentTrace = randomBytes(16).toString('hex');
    const parentSpan = randomBytes(8).toString('hex');
    const res = await fetch(`${base}/v1/sessions/${conversationId}`, {
      headers: { authorization: auth.authorization, traceparent: `00-${parentTrace}-${parentSpan}-01` },
    });
    assert.equal(res.status, 200);
    const span = await eventually('the GET span', () =>
      exporter.getFinishedSpans().find((s) => s.name === 'GET /v1/sessions/:conversationId' && s.spanContext().traceId === parentTrace),
    );
    assert.equal(span.parentSpanId, parentSpan);
    assert.ok(
      exporter.getFinishedSpans().some((s) => s.name === 'QueryWorkflow:state' && s.parentSpanId === span.spanContext().spanId),
      'the query is its child',
    );
  });

  it('a log line written inside a span carries its trace_id and span_id; outside, none', () => {
    const lines: Record<string, unknown>[] = [];
    const log = createLogger({
      level: 'info',
      destination: new Writable({
        write(chunk, _enc, cb) {
          lines.push(JSON.parse(String(chunk)));
          cb();
        },
      }),
    });
    log.info({ field: 1 }, 'outside');
    const ids = tracing.tracer.startActiveSpan('work', (span) => {
      log.info({ other: 2 }, 'inside');
      span.end();
      return span.spanContext();
    });
    log.info('outside again');
    assert.equal(lines[0]!.trace_id, undefined);
    assert.equal(lines[0]!.field, 1);
    assert.equal(lines[1]!.trace_id, ids.traceId);
    assert.equal(lines[1]!.span_id, ids.spanId);
    assert.equal(lines[1]!.other, 2);
    assert.deepEqual([lines[2]!.trace_id, lines[2]!.field, lines[2]!.other], [undefined, undefined, undefined], 'nothing carried over from other lines');
  });

  it('a session started without a trace context (an API that does not trace) leaves no span, even on a tracing worker', async () => {
    const untraced = new SessionsClient(stack.env.client); // no client interceptors
    const id = uniqueId('untraced');
    await untraced.startSession({
      conversationId: id,
      avatar: { type: 'runway-preset', presetId: 'cooking-teacher' },
      livekit: { roomName: `room-${id}` },
      mode: 'direct',
      timing,
    });
    await withTimeout(untraced.waitLive(id), 60_000, 'the untraced session to be live');
    assert.ok(await untraced.endSession(id));
    const handle = stack.env.client.workflow.getHandle(sessionWorkflowId(id));
    await withTimeout(handle.result(), 60_000, 'the untraced session to end');
    const history = await handle.fetchHistory();
    const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
    assert.equal(started?.header?.fields?.['_tracer-data'], undefined, 'no trace context in its start');
    await tracing.forceFlush();
    const about = exporter.getFinishedSpans().filter((s) => JSON.stringify(s.attributes).includes(id));
    assert.deepEqual(
      about.map((s) => s.name),
      [],
    );
  });

  it('the traced session replays on a worker that traces and on one that does not (test/replay.test.ts replays the untraced recordings with the same interceptors)', async () => {
    const history = await stack.env.client.workflow.getHandle(sessionWorkflowId(conversationId)).fetchHistory();
    const histories = [{ workflowId: sessionWorkflowId(conversationId), history }];
    const dataConverter = encryptedDataConverter([TEST_SECRETS_KEY]);
    for (const [name, sinks] of [
      ['tracing', tracing.workerOptions().sinks],
      ['not tracing', NO_TRACING_SINKS],
    ] as const) {
      const failures: string[] = [];
      let replayed = 0;
      const options = {
        workflowsPath: require.resolve('../workflows'),
        replayName: `tracing-replay-${name}`,
        dataConverter,
        interceptors: { workflowModules: [...WORKFLOW_INTERCEPTOR_MODULES] },
        sinks,
      };
      for await (const r of Worker.runReplayHistories(options, histories)) {
        replayed++;
        if (r.error) failures.push(`${r.workflowId}: ${r.error.message}`);
      }
      assert.equal(replayed, histories.length);
      assert.deepEqual(failures, [], `replay on a worker ${name}`);
    }
  });
});

describe('tracing configuration (the OTEL_* variables)', () => {
  it('is off when nothing asks for it, or when switched off', () => {
    assert.equal(tracingSettings(loadEnv({})), undefined);
    assert.equal(tracingSettings(loadEnv({ OTEL_SERVICE_NAME: 'x' })), undefined);
    assert.equal(tracingSettings(loadEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'true' })), undefined);
    assert.equal(tracingSettings(loadEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_TRACES_EXPORTER: 'none' })), undefined);
  });

  it('is on with an OTLP endpoint or a named exporter', () => {
    assert.deepEqual(tracingSettings(loadEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })), { exporters: ['otlp'], serviceName: undefined });
    assert.deepEqual(tracingSettings(loadEnv({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces', OTEL_SERVICE_NAME: 'avatars' })), {
      exporters: ['otlp'],
      serviceName: 'avatars',
    });
    assert.deepEqual(tracingSettings(loadEnv({ OTEL_TRACES_EXPORTER: 'otlp, console' })), { exporters: ['otlp', 'console'], serviceName: undefined });
  });

  it('bad values are refused naming the variable', () => {
    const bad: [Record<string, string>, RegExp][] = [
      [{ OTEL_TRACES_EXPORTER: 'jaeger' }, /OTEL_TRACES_EXPORTER: must be otlp, console or none/],
      [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }, /OTEL_EXPORTER_OTLP_ENDPOINT: must be an http\(s\) URL/],
      [{ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, /OTEL_EXPORTER_OTLP_PROTOCOL: only http\/protobuf is supported/],
      [{ OTEL_EXPORTER_OTLP_HEADERS: 'just-a-key' }, /OTEL_EXPORTER_OTLP_HEADERS: must be key=value pairs/],
      [{ OTEL_TRACES_SAMPLER: 'sometimes' }, /OTEL_TRACES_SAMPLER: must be always_on/],
      [{ OTEL_TRACES_SAMPLER_ARG: '2' }, /OTEL_TRACES_SAMPLER_ARG: must be between 0 and 1/],
      [{ OTEL_SDK_DISABLED: 'yes' }, /OTEL_SDK_DISABLED: must be true or false/],
    ];
    for (const [env, message] of bad)
      assert.throws(
        () => loadEnv(env),
        (err: Error) => err instanceof ConfigError && message.test(err.message),
        JSON.stringify(env),
      );
  });

  it('OTLP header values (a vendor key) are kept out of log lines', () => {
    const key = randomBytes(16).toString('hex');
    loadEnv({ OTEL_EXPORTER_OTLP_HEADERS: `x-api-key=${key}` });
    const lines: string[] = [];
    createLogger({
      level: 'info',
      destination: new Writable({
        write(chunk, _enc, cb) {
          lines.push(String(chunk));
          cb();
        },
      }),
    }).info(`export failed with key ${key}`);
    assert.doesNotMatch(lines.join(''), new RegExp(key));
  });
});

describe('OTLP export', () => {
  it('spans go to OTEL_EXPORTER_OTLP_ENDPOINT/v1/traces as OTLP/HTTP protobuf, with the headers OTEL_EXPORTER_OTLP_HEADERS names', async () => {
    const received: { url?: string; type?: string; key?: string; bytes: number }[] = [];
    const server = http.createServer((req, res) => {
      let bytes = 0;
      req.on('data', (d: Buffer) => (bytes += d.length));
      req.on('end', () => {
        received.push({ url: req.url, type: req.headers['content-type'], key: req.headers['x-api-key'] as string | undefined, bytes });
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const key = randomBytes(8).toString('hex');
    // The exporter reads the OTEL_EXPORTER_OTLP_* variables itself, as in production.
    const saved = { ...process.env };
    Object.assign(process.env, { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_HEADERS: `x-api-key=${key}` });
    try {
      const settings = tracingSettings(loadEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_HEADERS: `x-api-key=${key}` }));
      assert.deepEqual(settings?.exporters, ['otlp']);
      const otlp = (await startTracing(settings, { serviceName: 'otlp-test' }))!;
      otlp.tracer.startSpan('one').end();
      await otlp.shutdown(); // flushes the batch
    } finally {
      for (const k of ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_HEADERS']) if (saved[k] === undefined) delete process.env[k];
      server.close();
    }
    assert.equal(received.length, 1, JSON.stringify(received));
    assert.equal(received[0]!.url, '/v1/traces');
    assert.equal(received[0]!.type, 'application/x-protobuf');
    assert.equal(received[0]!.key, key);
    assert.ok(received[0]!.bytes > 0);
  });
});
