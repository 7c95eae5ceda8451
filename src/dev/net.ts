import dgram from 'node:dgram';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import os from 'node:os';

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Whether `port` can be bound on 127.0.0.1 right now. */
async function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** The kernel's range for ephemeral ports (outgoing connections and `listen(0)` take theirs from it). */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low && high) return [low, high];
  } catch {
    // Not Linux: the IANA range.
  }
  return [49152, 65535];
}

/**
 * A free TCP port for a server that is killed and must bind the same port again when restarted (the
 * chaos harness's Temporal). Taken below the ephemeral range: a `freePort()` port can be handed to an
 * outgoing connection or another `listen(0)` while its server is down, and the restart then fails
 * with "address already in use". `random` picks the candidates (seeded runs pass their own).
 */
export async function stablePort(random: () => number = Math.random): Promise<number> {
  const [low] = ephemeralRange();
  const from = 20_000;
  const to = low > from + 1000 ? low - 1 : 30_000;
  for (let i = 0; i < 200; i++) {
    const port = from + Math.floor(random() * (to - from));
    if (await canBind(port)) return port;
  }
  return freePort();
}

/** A UDP port nothing is bound to right now (WebRTC clients hold many ephemeral UDP ports). */
export async function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    sock.on('error', reject);
    sock.bind(0, () => {
      const { port } = sock.address();
      sock.close(() => resolve(port));
    });
  });
}

/** `count` distinct free ports. */
export async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

/**
 * The address WebRTC media should use on this host. libwebrtc skips loopback when gathering ICE
 * candidates, so a single-host setup needs the machine's own non-loopback address; traffic to it
 * never leaves the host.
 */
export function localMediaIp(): string {
  if (process.env.LIVEKIT_NODE_IP) return process.env.LIVEKIT_NODE_IP;
  for (const addrs of Object.values(os.networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

/** Resolves when `probe` returns true, polling until `timeoutMs`; rejects with `what` otherwise. */
export async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs = 15_000, intervalMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: string | undefined;
  while (Date.now() < deadline) {
    try {
      if (await probe()) return;
    } catch (err) {
      lastError = String(err);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${lastError}` : ''}`);
}
