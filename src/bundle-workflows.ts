// Build step (`npm run build`, the Dockerfile's build stage): bundles the compiled workflow code once,
// with the failure converter every worker of this service uses, into <outDir>/workflow-bundle.js.
// A worker running compiled code loads that file (src/workers.ts, PREBUILT_WORKFLOW_BUNDLE) instead of
// running webpack at every start; run from source (tsx) it bundles at start as before. A second
// bundle, workflow-bundle-traced.js, adds OpenTelemetry's workflow interceptors (src/tracing.ts) for
// workers that trace; the plain one has no tracing code at all.
import { writeFileSync } from 'node:fs';
import { bundleWorkflowCode } from '@temporalio/worker';
import { FAILURE_CONVERTER_PATH } from './secrets/payload-codec';
import { TRACING_WORKFLOW_MODULES } from './tracing';
import { PREBUILT_TRACED_WORKFLOW_BUNDLE, PREBUILT_WORKFLOW_BUNDLE } from './workers';

async function main(): Promise<void> {
  if (!PREBUILT_WORKFLOW_BUNDLE || !PREBUILT_TRACED_WORKFLOW_BUNDLE) throw new Error('run this from the compiled output (node dist/src/bundle-workflows.js), not from source');
  for (const [file, workflowInterceptorModules] of [[PREBUILT_WORKFLOW_BUNDLE, []], [PREBUILT_TRACED_WORKFLOW_BUNDLE, [...TRACING_WORKFLOW_MODULES]]] as const) {
    const { code } = await bundleWorkflowCode({ workflowsPath: require.resolve('../workflows'), failureConverterPath: FAILURE_CONVERTER_PATH, workflowInterceptorModules: [...workflowInterceptorModules] });
    writeFileSync(file, code);
    // eslint-disable-next-line no-console
    console.log(`workflow bundle written to ${file} (${Math.round(code.length / 1024)} KiB)`);
  }
}

main().catch((err) => {
  // eslint-disable-next-line no-console
  console.error(err);
  process.exit(1);
});
