// deploy/grafana/avatar-sessions.json against what the service really exports. No Grafana runs here,
// so: the dashboard's structure (every panel has a title, the templated Prometheus datasource and a
// PromQL target), and every metric its queries use is in a real scrape after one relay session (with
// a renewal) driven through the HTTP API on the test stack: the workers' runtime endpoint installed
// exactly as the worker processes install it (src/temporal.ts installRuntime; its `temporal_` prefix
// applies to the SDK's own metrics, not to the service's) and the API's metrics port. Counters only a fault produces (Runway errors, flags, stalls, reaped
// orphans) cannot appear after a clean session; for those the test checks the dashboard names them
// the way the exporter spells the counters that did appear, and that the code creates them.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { startApiServer } from '../src/api/server';
import { freePort } from '../src/dev/net';
import { createLogger } from '../src/log';
import { ApiMetrics, visibilityPhaseCounter } from '../src/metrics';
import { installRuntime } from '../src/temporal';
import { sessionWorkflowId } from '../workflows/shared';
import { startSessionStack, uniqueId, type SessionStack } from './helpers/session-stack';
import { eventually, withTimeout } from './helpers/wait';

const ROOT = path.resolve(__dirname, '..');
const DASHBOARD = path.join(ROOT, 'deploy', 'grafana', 'avatar-sessions.json');

interface Target {
  expr?: string;
  refId?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  type: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
  title: string;
  uid: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: string }[] };
};
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== 'row');

const PROMQL_WORDS = new Set([
  'sum',
  'rate',
  'increase',
  'histogram_quantile',
  'by',
  'without',
  'on',
  'ignoring',
  'and',
  'or',
  'unless',
  'avg',
  'max',
  'min',
  'count',
  'le',
  'offset',
  'bool',
  'group_left',
  'group_right',
]);

/** Metric names in a PromQL expression: identifiers outside label matchers, `by (...)` lists and ranges. */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring)\s*\([^)]*\)/g, ' ')
    .replace(/"[^"]*"/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const word = m[0];
    if (PROMQL_WORDS.has(word) || /^\d/.test(word)) continue;
    // a function call: the identifier is followed by "("
    if (/^\s*\(/.test(stripped.slice(m.index + word.length))) continue;
    names.add(word);
  }
  return [...names];
}

/** Series names (before `{` or the value) in a Prometheus text exposition. */
function exportedNames(text: string): Set<string> {
  return new Set(
    text
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(l)![0]),
  );
}

/** Counters that one clean session never increments (each needs a fault); created in the code named here. */
const FAULT_ONLY: Record<string, string> = {
  avatar_runway_errors: 'src/workers.ts',
  avatar_session_flags: 'workflows/session/run.ts',
  avatar_relay_stalls: 'activities/relay.ts',
  avatar_orphans_reaped: 'workflows/reaper.ts',
};

describe('Grafana dashboard: structure', () => {
  it('is a dashboard with a templated Prometheus datasource, and every panel has a title, that datasource and a PromQL target', () => {
    assert.equal(dashboard.uid, 'avatar-sessions');
    assert.ok(dashboard.schemaVersion >= 36, `schemaVersion ${dashboard.schemaVersion}`);
    const ds = dashboard.templating.list.find((v) => v.type === 'datasource');
    assert.ok(ds && ds.query === 'prometheus', 'a datasource variable over Prometheus datasources');
    assert.ok(panels.length >= 10, `${panels.length} panels`);
    const ids = new Set<unknown>();
    for (const p of dashboard.panels.flatMap((q) => [q, ...(q.panels ?? [])])) {
      const id = (p as { id?: unknown }).id;
      assert.ok(!ids.has(id), `panel id ${String(id)} is unique`);
      ids.add(id);
    }
    for (const p of panels) {
      assert.ok(p.title, 'a panel without a title');
      assert.deepEqual(p.datasource, { type: 'prometheus', uid: `\${${ds.name}}` }, p.title);
      assert.ok(p.targets?.length, `${p.title}: no targets`);
      for (const t of p.targets) {
        assert.ok(t.expr && t.expr.trim(), `${p.title}: a target without expr`);
        assert.ok(t.refId, `${p.title}: a target without refId`);
        assert.equal((t.expr.match(/\(/g) ?? []).length, (t.expr.match(/\)/g) ?? []).length, `${p.title}: unbalanced parentheses in ${t.expr}`);
        assert.ok(metricNames(t.expr).length > 0, `${p.title}: no metric in ${t.expr}`);
      }
    }
  });

  it('covers what operators asked for: phases, time to live, end reasons, renewals and gaps, Runway latency and errors, relay frames and stalls, webhooks, orphans, billed Runway seconds', () => {
    const exprs = panels.flatMap((p) => p.targets!.map((t) => t.expr!)).join('\n');
    for (const needle of [
      'avatar_sessions_running',
      'avatar_session_phase_seconds_bucket',
      'end_reason',
      'avatar_session_renewals',
      'avatar_gap',
      'renewal_failed',
      'avatar_runway_request_seconds_bucket',
      'avatar_runway_errors',
      'kind',
      'avatar_relay_video_frames',
      'avatar_relay_stalls',
      'avatar_livekit_webhooks_total',
      'avatar_orphans_reaped',
      'avatar_runway_billed_seconds',
    ]) {
      assert.ok(exprs.includes(needle), needle);
    }
  });
});

describe('Grafana dashboard: every metric it queries is exported', () => {
  let stack: SessionStack;
  let workerMetricsUrl: string;
  let apiMetricsUrl: string;
  let base: string;
  let close: (() => Promise<void>) | undefined;
  const token = randomBytes(24).toString('hex');

  before(async () => {
    const [metricsPort, apiPort] = [await freePort(), await freePort()];
    workerMetricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    const quiet = createLogger({
      level: 'error',
      destination: new Writable({
        write(_c, _e, cb) {
          cb();
        },
      }),
    });
    // Exactly as the worker processes do, before any worker exists in this process.
    installRuntime(quiet, metricsPort);
    stack = await startSessionStack({ sim: { defaults: { provisioningMs: 100, avatarMedia: 'light' } }, webhookPort: apiPort });
    const api = await startApiServer({
      config: { apiToken: token, apiPort, livekit: stack.config.livekit },
      sessions: stack.sessions,
      log: quiet,
      port: apiPort,
      waitLiveMs: 20_000,
      allowTimingOverrides: true,
      metrics: new ApiMetrics({ countPhase: visibilityPhaseCounter(stack.env.client), countCacheMs: 1000 }),
      metricsPort: 0,
    });
    base = api.url;
    apiMetricsUrl = api.metricsUrl!;
    close = api.close;
  });
  after(async () => {
    await close?.();
    await stack?.stop();
  });

  it('one relay session with a renewal, through the API: the scrapes have every metric the dashboard queries', async () => {
    const conversationId = uniqueId('dashboard');
    const call = (method: string, p: string, body?: unknown) =>
      fetch(base + p, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
    const started = await call('POST', '/v1/sessions?wait=live', {
      conversationId,
      avatar: { type: 'runway-preset', presetId: 'cooking-teacher' },
      livekit: { roomName: `room-${conversationId}` },
      mode: 'relay',
      timing: {
        readyDeadlineSeconds: 20,
        avatarJoinTimeoutSeconds: 8,
        monitorIntervalSeconds: 0.5,
        endCallGraceSeconds: 3,
        sessionCapSeconds: 12,
        renewalLeadSeconds: 2,
      },
    });
    assert.equal(started.status, 201, await started.text());
    await eventually(
      'a renewal',
      async () => ((await stack.sessions.getSession(conversationId))?.events.some((e) => e.type === 'renewed') ? true : undefined),
      40_000,
    );
    assert.equal((await call('POST', `/v1/sessions/${conversationId}/end`)).status < 300, true);
    await withTimeout(stack.env.client.workflow.getHandle(sessionWorkflowId(conversationId)).result(), 60_000, 'the session to end');

    const worker = await eventually(
      'the ended session in the worker metrics',
      async () => {
        const t = await (await fetch(workerMetricsUrl)).text();
        return /avatar_sessions_ended/.test(t) && /avatar_session_renewals/.test(t) ? t : undefined;
      },
      20_000,
    );
    const apiText = await (await fetch(apiMetricsUrl)).text();
    const exported = new Set([...exportedNames(worker), ...exportedNames(apiText)]);

    // How the runtime's exporter spells a counter created as avatar_sessions_ended.
    const ended = [...exported].find((n) => /avatar_sessions_ended/.test(n))!;
    const counterName = (base: string) => ended.replace('avatar_sessions_ended', base);

    const queried = [...new Set(panels.flatMap((p) => p.targets!.flatMap((t) => metricNames(t.expr!))))].sort();
    const missing: string[] = [];
    for (const name of queried) {
      if (exported.has(name)) continue;
      const fault = Object.keys(FAULT_ONLY).find((b) => counterName(b) === name);
      if (fault) {
        assert.match(
          readFileSync(path.join(ROOT, FAULT_ONLY[fault]!), 'utf8'),
          new RegExp(`createCounter\\('${fault}'`),
          `${fault} is created in ${FAULT_ONLY[fault]}`,
        );
        continue;
      }
      missing.push(name);
    }
    assert.deepEqual(
      missing,
      [],
      `queried by the dashboard but not exported (exported: ${[...exported]
        .filter((n) => n.includes('avatar'))
        .sort()
        .join(', ')})`,
    );
    // The fault-only allowance is not a blanket: what a clean relay session produces must really be there.
    for (const name of [
      'avatar_relay_video_frames',
      'avatar_relay_mixed_audio_frames',
      'avatar_session_renewals',
      'avatar_session_phase_entered',
      'avatar_runway_billed_seconds',
    ]) {
      assert.ok(exported.has(counterName(name)), `${counterName(name)} exported`);
    }
  });
});
