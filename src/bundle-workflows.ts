// Build step (`npm run build`, the Dockerfile's build stage): bundles the compiled workflow code once,
// with the failure converter every worker of this service uses, into <outDir>/workflow-bundle.js.
// A worker running compiled code loads that file (src/workers.ts, PREBUILT_WORKFLOW_BUNDLE) instead of
// running webpack at every start; run from source (tsx) it bundles at start as before. Like every
// bundle of this service it includes the workflow interceptor modules (src/tracing.ts).
import { writeFileSync } from 'node:fs';
import { bundleWorkflowCode } from '@temporalio/worker';
import { FAILURE_CONVERTER_PATH } from './secrets/payload-codec';
import { WORKFLOW_INTERCEPTOR_MODULES } from './tracing';
import { PREBUILT_WORKFLOW_BUNDLE } from './workers';

async function main(): Promise<void> {
  if (!PREBUILT_WORKFLOW_BUNDLE) throw new Error('run this from the compiled output (node dist/src/bundle-workflows.js), not from source');
  const { code } = await bundleWorkflowCode({
    workflowsPath: require.resolve('../workflows'),
    failureConverterPath: FAILURE_CONVERTER_PATH,
    workflowInterceptorModules: [...WORKFLOW_INTERCEPTOR_MODULES],
  });
  writeFileSync(PREBUILT_WORKFLOW_BUNDLE, code);
  // eslint-disable-next-line no-console -- a build step's one line for the person running the build
  console.log(`workflow bundle written to ${PREBUILT_WORKFLOW_BUNDLE} (${Math.round(code.length / 1024)} KiB)`);
}

main().catch((err) => {
  // eslint-disable-next-line no-console -- a build step's failure, on stderr for the build log
  console.error(err);
  process.exit(1);
});
