// Service metrics for Prometheus (GET /metrics on the API process). The workers' own Temporal SDK
// metrics are served by the Temporal runtime on METRICS_PORT.
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class ApiMetrics {
  readonly registry = new Registry();
  readonly requests = new Histogram({
    name: 'avatar_api_request_seconds',
    help: 'HTTP API requests by route, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    registers: [this.registry],
  });
  readonly sessionsStarted = new Counter({ name: 'avatar_sessions_started_total', help: 'Sessions started through the API', labelNames: ['mode'] as const, registers: [this.registry] });
  readonly webhooks = new Counter({ name: 'avatar_livekit_webhooks_total', help: 'LiveKit webhooks received, and whether they ended a session', labelNames: ['event', 'acted'] as const, registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  observeRequest(route: string, method: string, status: number, seconds: number): void {
    this.requests.observe({ route, method, status: String(status) }, seconds);
  }
}
