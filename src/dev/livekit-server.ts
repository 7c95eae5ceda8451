// Starts a real livekit-server on free (or given) ports, with its own keys, bound to loopback.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { startProcess, type ManagedProcess } from './child';
import { freePorts, freeUdpPort, localMediaIp, waitFor } from './net';
import { livekitServerPath } from './tools';

export interface LiveKitServerOptions {
  /** HTTP/WebSocket port; ICE-TCP and UDP mux ports are taken next to free ones. */
  port?: number;
  apiKey?: string;
  apiSecret?: string;
  /** Webhook receiver URLs (signed with apiKey). */
  webhookUrls?: string[];
  logFile?: string;
  label?: string;
}

export interface LiveKitServer {
  /** ws://127.0.0.1:PORT: what clients connect to. */
  url: string;
  /** http://127.0.0.1:PORT: what RoomServiceClient talks to. */
  httpUrl: string;
  apiKey: string;
  apiSecret: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

class ExitedEarly extends Error {}

/**
 * Starts livekit-server. With no fixed port, ports are picked free (TCP and UDP checked separately)
 * and a start that loses a port race to another process is retried on new ports.
 */
export async function startLiveKitServer(opts: LiveKitServerOptions = {}): Promise<LiveKitServer> {
  for (let attempt = 1; ; attempt++) {
    const ports: [number, number, number] = opts.port
      ? [opts.port, opts.port + 1, opts.port + 2]
      : await (async () => {
          const [h, t] = await freePorts(2);
          return [h!, t!, await freeUdpPort()] as [number, number, number];
        })();
    try {
      return await startOnce(opts, ports);
    } catch (err) {
      if (opts.port || attempt >= 3 || !(err instanceof ExitedEarly)) throw err;
    }
  }
}

async function startOnce(opts: LiveKitServerOptions, [httpPort, tcpPort, udpPort]: [number, number, number]): Promise<LiveKitServer> {
  const apiKey = opts.apiKey ?? `lk${randomBytes(6).toString('hex')}`;
  const apiSecret = opts.apiSecret ?? randomBytes(32).toString('hex');
  const config = {
    port: httpPort,
    bind_addresses: ['127.0.0.1'],
    rtc: {
      tcp_port: tcpPort,
      udp_port: udpPort,
      use_external_ip: false,
      // Setting node_ip keeps the server from adding public STUN servers; media stays on this host.
      node_ip: localMediaIp(),
    },
    keys: { [apiKey]: apiSecret },
    logging: { level: 'warn' },
    room: { auto_create: true, empty_timeout: 300, departure_timeout: 20 },
    ...(opts.webhookUrls?.length ? { webhook: { api_key: apiKey, urls: opts.webhookUrls } } : {}),
  };
  const proc = startProcess(opts.label ?? 'livekit-server', livekitServerPath(), ['--config-body', JSON.stringify(config)], {
    logFile: opts.logFile,
  });
  const httpUrl = `http://127.0.0.1:${httpPort}`;
  let exited = false;
  const early = proc.exited.then(() => {
    exited = true;
    throw new ExitedEarly(`livekit-server exited early (see ${opts.logFile ?? 'its output'})`);
  });
  early.catch(() => undefined);
  await Promise.race([
    early,
    waitFor(`livekit-server on ${httpUrl}`, async () => {
      if (exited) return false;
      const res = await fetch(httpUrl + '/');
      return res.status === 200;
    }),
  ]);
  return {
    url: `ws://127.0.0.1:${httpPort}`,
    httpUrl,
    apiKey,
    apiSecret,
    process: proc,
    // livekit-server drains rooms for a long while on SIGTERM; a dev server has nothing worth draining.
    stop: () => proc.stop(2000),
  };
}

export function defaultLogDir(): string {
  return path.resolve(__dirname, '..', '..', '.data', 'logs');
}
