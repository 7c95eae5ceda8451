// Worker factories: the orchestration worker (`avatar-sessions`: workflows + Runway/room activities)
// and the media worker (`avatar-media`: the relay). Processes and tests build workers through these.
import { RoomServiceClient } from 'livekit-server-sdk';
import { Runtime, Worker, type NativeConnection, type WorkflowBundleOption } from '@temporalio/worker';
import { getClient } from '@temporalio/activity';
import { createMediaActivities, createSessionActivities } from '../activities';
import type { RunwayActivityDeps } from '../activities/runway';
import { MEDIA_TASK_QUEUE, SESSION_TASK_QUEUE } from '../workflows/shared';
import { codecKeys, type ServiceConfig } from './config';
import { encryptedDataConverter } from './secrets/payload-codec';
import { CustomerRooms } from './livekit/room-service';
import { RunwayClient, type RunwayRequestInfo } from './runway/client';
import { SealedBox } from './secrets/sealed-box';

export interface WorkerOptions {
  connection: NativeConnection;
  namespace?: string;
  config: Pick<ServiceConfig, 'runway' | 'livekit' | 'secretsKey' | 'secretsOldKeys'>;
  /** A pre-built bundle (production, tests); otherwise the workflows are bundled at start. */
  workflowBundle?: WorkflowBundleOption;
  identity?: string;
  poll?: RunwayActivityDeps['poll'];
  presencePollMs?: number;
  shutdownGraceTime?: number | `${number}s` | `${number}ms`;
  /** Admission control: a configured session limit (else the account's), and how often holders are checked. */
  admission?: { sessionLimitOverride?: number; checkIntervalSeconds?: number };
  /** Media worker: no avatar video for this long fails the relay so the workflow re-bridges (default 10 s). */
  relayStallSeconds?: number;
}

/** Runway API latency and errors by kind, exported with the worker runtime's metrics. */
function runwayMetrics(): (info: RunwayRequestInfo) => void {
  const meter = Runtime.instance().metricMeter;
  const latency = meter.createHistogram('avatar_runway_request_seconds', 'float', 's', 'Runway API calls by endpoint and status');
  const errors = meter.createCounter('avatar_runway_errors', 'calls', 'Failed Runway API calls by endpoint and error kind');
  return (info) => {
    latency.record(info.durationMs / 1000, { endpoint: info.endpoint, status: String(info.status ?? 'none') });
    if (info.errorKind) errors.add(1, { endpoint: info.endpoint, kind: info.errorKind });
  };
}

export function httpUrl(livekitUrl: string): string {
  return livekitUrl.replace(/^ws(s?):\/\//, 'http$1://');
}

export async function createSessionWorker(opts: WorkerOptions): Promise<Worker> {
  const { config } = opts;
  const runway = new RunwayClient({ apiKey: config.runway.apiKey, baseUrl: config.runway.baseUrl, onRequest: runwayMetrics() });
  const rooms = new CustomerRooms(new RoomServiceClient(httpUrl(config.livekit.url), config.livekit.apiKey, config.livekit.apiSecret));
  return Worker.create({
    connection: opts.connection,
    namespace: opts.namespace ?? 'default',
    taskQueue: SESSION_TASK_QUEUE,
    dataConverter: encryptedDataConverter(codecKeys(config)),
    ...(opts.identity ? { identity: opts.identity } : {}),
    ...(opts.workflowBundle ? { workflowBundle: opts.workflowBundle } : { workflowsPath: require.resolve('../workflows') }),
    activities: createSessionActivities({
      runway,
      rooms,
      sealer: new SealedBox(config.secretsKey),
      livekit: { ...config.livekit },
      poll: opts.poll,
      presencePollMs: opts.presencePollMs,
      temporal: getClient,
      ...opts.admission,
    }),
    shutdownGraceTime: opts.shutdownGraceTime ?? 10_000,
  });
}

export async function createMediaWorker(opts: Omit<WorkerOptions, 'workflowBundle' | 'poll' | 'presencePollMs'>): Promise<Worker> {
  return Worker.create({
    connection: opts.connection,
    namespace: opts.namespace ?? 'default',
    taskQueue: MEDIA_TASK_QUEUE,
    dataConverter: encryptedDataConverter(codecKeys(opts.config)),
    ...(opts.identity ? { identity: opts.identity } : {}),
    activities: createMediaActivities({ config: opts.config, stallSeconds: opts.relayStallSeconds }),
    shutdownGraceTime: opts.shutdownGraceTime ?? 10_000,
  });
}
