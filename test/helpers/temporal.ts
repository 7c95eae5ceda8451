// Real Temporal for tests: the SDK's TestWorkflowEnvironment driving the installed `temporal` CLI
// (start-dev, in memory) or the time-skipping test server, never a download.
import { Runtime, DefaultLogger, makeTelemetryFilterString } from '@temporalio/worker';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import type { DataConverter } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { temporalCliPath, temporalTestServerPath } from '../../src/dev/tools';
import { SEARCH_ATTRIBUTES } from '../../workflows/shared';
import { reapChildrenOnExit } from '../../src/dev/child';

reapChildrenOnExit();

let runtimeInstalled = false;
export function installTestRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  try {
    Runtime.install({
      logger: new DefaultLogger((process.env.TEST_TEMPORAL_LOG_LEVEL as 'WARN') ?? 'ERROR'),
      telemetryOptions: { logging: { forward: {}, filter: makeTelemetryFilterString({ core: 'ERROR' }) } },
    });
  } catch {
    // already installed by another helper in this process
  }
}

export async function startTemporal(opts: { dataConverter?: DataConverter; dbFile?: string } = {}): Promise<TestWorkflowEnvironment> {
  installTestRuntime();
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: temporalCliPath() },
      searchAttributes: SEARCH_ATTRIBUTES,
      dbFilename: opts.dbFile,
      log: { format: 'pretty', level: 'error' },
    },
    client: opts.dataConverter ? { dataConverter: opts.dataConverter } : undefined,
  });
}

export async function startTimeSkippingTemporal(opts: { dataConverter?: DataConverter } = {}): Promise<TestWorkflowEnvironment> {
  installTestRuntime();
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: temporalTestServerPath() } },
    client: opts.dataConverter ? { dataConverter: opts.dataConverter } : undefined,
  });
  // The test server knows no custom search attributes until they are added.
  await env.connection.operatorService.addSearchAttributes({
    namespace: 'default',
    searchAttributes: Object.fromEntries(
      SEARCH_ATTRIBUTES.map((k) => [
        k.name,
        temporal.api.enums.v1.IndexedValueType[`INDEXED_VALUE_TYPE_${k.type}` as keyof typeof temporal.api.enums.v1.IndexedValueType],
      ]),
    ),
  });
  return env;
}
