// What goes into the session workflows' bundle. Every module a workflow imports is evaluated again for
// each run a worker holds (the reusable V8 context keeps module state per run), so heavy libraries stay
// out of it: zod (input checks run in a local activity, src/session-input.ts) and, until a traced run
// needs it, OpenTelemetry (workflows/tracing.ts requires it lazily).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { bundleWorkflowCode } from '@temporalio/worker';
import { TRACE_HEADER as LIBRARY_TRACE_HEADER } from '@temporalio/interceptors-opentelemetry/lib/instrumentation';
import { FAILURE_CONVERTER_PATH } from '../src/secrets/payload-codec';
import { WORKFLOW_INTERCEPTOR_MODULES } from '../src/tracing';
import { TRACE_HEADER } from '../workflows/tracing';

const quiet = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

describe('workflow bundle', () => {
  it('holds no zod, and requires OpenTelemetry only inside the traced path', async () => {
    const { code } = await bundleWorkflowCode({
      workflowsPath: require.resolve('../workflows'),
      failureConverterPath: FAILURE_CONVERTER_PATH,
      workflowInterceptorModules: [...WORKFLOW_INTERCEPTOR_MODULES],
      logger: quiet,
    });
    const modules = [...code.matchAll(/^\/\*\*\*\/ "([^"]+)"/gm)].map((m) => m[1]!);
    assert.ok(modules.length > 20, `found the bundle's module list (${modules.length} modules)`);
    assert.deepEqual(
      modules.filter((m) => m.includes('/node_modules/zod/')),
      [],
      'zod is not in the workflow bundle',
    );
    // The tracing module's own code: OpenTelemetry appears there only in the lazy require.
    const tracing = modules.find((m) => m.endsWith('workflows/tracing.ts'));
    assert.ok(tracing, 'workflows/tracing.ts is bundled');
    const start = code.indexOf(`/***/ "${tracing}"`);
    const body = code.slice(start, code.indexOf('/***/ "', start + 10));
    const otelRequires = [...body.matchAll(/__webpack_require__\([^)]*opentelemetry[^)]*\)/g)].map((m) => m[0]);
    assert.equal(otelRequires.length, 1, `one (lazy) require of OpenTelemetry in workflows/tracing.ts: ${otelRequires.join(', ')}`);
    assert.match(body, /const loadOtel = \(\)\s*=>[^\n]*__webpack_require__\([^\n]*opentelemetry/, 'the require sits in loadOtel, run on first traced use');
  });

  it("the workflows' trace header is the OpenTelemetry interceptors' own", () => {
    assert.equal(TRACE_HEADER, LIBRARY_TRACE_HEADER);
  });
});
