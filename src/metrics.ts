// Service metrics for Prometheus (GET /metrics on the API process's own metrics port, API_METRICS_PORT,
// never on the API's port). The workers' own Temporal SDK metrics are served by the Temporal runtime
// on METRICS_PORT.
import type { Client } from '@temporalio/client';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { PhaseKey, SESSION_WORKFLOW_TYPE } from '../workflows/shared';
import type { SessionPhase } from '../workflows/types';

/** Phases a running session can be in (terminal ones are not counted: they only ever grow). */
export const RUNNING_PHASES: readonly SessionPhase[] = ['waiting_capacity', 'creating', 'waiting_ready', 'consuming', 'bridging', 'live', 'tearing_down'];

/** Counts running sessions in one phase (Temporal visibility); ApiMetrics caches what it returns. */
export type PhaseCounter = (phase: SessionPhase) => Promise<number>;

/** The visibility count of running session workflows in `phase` (eventually consistent). */
export function visibilityPhaseCounter(client: Client): PhaseCounter {
  return async (phase) => {
    const { count } = await client.workflow.count(
      `WorkflowType = '${SESSION_WORKFLOW_TYPE}' AND ExecutionStatus = 'Running' AND ${PhaseKey.name} = '${phase}'`,
    );
    return count;
  };
}

export class ApiMetrics {
  readonly registry = new Registry();
  readonly requests = new Histogram({
    name: 'avatar_api_request_seconds',
    help: 'HTTP API requests by route, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    registers: [this.registry],
  });
  readonly sessionsStarted = new Counter({
    name: 'avatar_sessions_started_total',
    help: 'Sessions started through the API (not counting starts that joined a running session)',
    labelNames: ['mode'] as const,
    registers: [this.registry],
  });
  readonly waitLive = new Counter({
    name: 'avatar_api_wait_live_total',
    help: 'Outcomes of POST /v1/sessions?wait=live',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly webhooks = new Counter({
    name: 'avatar_livekit_webhooks_total',
    help: 'LiveKit webhooks received, and whether they ended a session',
    labelNames: ['event', 'acted'] as const,
    registers: [this.registry],
  });
  readonly visibilityErrors = new Counter({
    name: 'avatar_sessions_visibility_errors_total',
    help: 'Scrapes whose session counts could not be read from Temporal visibility',
    registers: [this.registry],
  });

  /**
   * `countPhase`: how running sessions are counted (one visibility COUNT per phase). The counts are
   * cached for `countCacheMs` (default 15 s) and refreshed by at most one set of queries at a time,
   * however often and however many scrapers ask: a loop on /metrics costs Temporal's database at most
   * RUNNING_PHASES.length queries per `countCacheMs`. A failed or timed-out refresh keeps the last
   * values (the error counter says they are stale) and is not retried before the next period either.
   */
  constructor(opts: { countPhase?: PhaseCounter; countTimeoutMs?: number; countCacheMs?: number } = {}) {
    collectDefaultMetrics({ register: this.registry });
    const { countPhase } = opts;
    if (countPhase) {
      const errors = this.visibilityErrors;
      const timeoutMs = opts.countTimeoutMs ?? 5000;
      const cacheMs = opts.countCacheMs ?? 15_000;
      let cached: { at: number; counts?: (readonly [SessionPhase, number])[] } | undefined;
      let inFlight: Promise<void> | undefined;
      const refresh = (): Promise<void> =>
        (inFlight ??= (async () => {
          let timer: NodeJS.Timeout | undefined;
          try {
            const counts = await Promise.race([
              Promise.all(RUNNING_PHASES.map(async (phase) => [phase, await countPhase(phase)] as const)),
              new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('visibility count timed out')), timeoutMs))),
            ]);
            cached = { at: Date.now(), counts };
          } catch {
            // Keep the last values; the error counter tells the operator they are stale.
            errors.inc();
            cached = { at: Date.now(), counts: cached?.counts };
          } finally {
            clearTimeout(timer);
            inFlight = undefined;
          }
        })());
      new Gauge({
        name: 'avatar_sessions_running',
        help: `Running sessions by phase (Temporal visibility, eventually consistent; read at most every ${Math.round(cacheMs / 1000)} s)`,
        labelNames: ['phase'] as const,
        registers: [this.registry],
        async collect() {
          if (!cached || Date.now() - cached.at >= cacheMs) await refresh();
          if (!cached?.counts) return;
          this.reset();
          for (const [phase, n] of cached.counts) this.set({ phase }, n);
        },
      });
    }
  }

  observeRequest(route: string, method: string, status: number, seconds: number): void {
    this.requests.observe({ route, method, status: String(status) }, seconds);
  }
}
