// `npm run chaos [-- --sessions 30 --seed 42 --kills 5 --json]`: the chaos run (src/chaos/harness.ts).
// Real servers: two livekit-servers, a Temporal dev server on SQLite, the Runway simulator, the
// worker processes. Exits 1 if any end check fails, and with a FAILED verdict if the harness itself fails.
import { parseArgs } from 'node:util';
import { reapChildrenOnExit } from '../src/dev/child';
import { formatChaosReport, runChaos } from '../src/chaos/harness';

reapChildrenOnExit();
// rtc-node (the simulator's avatars, in this process) logs at debug level unless in production.
process.env.NODE_ENV ??= 'production';

const { values } = parseArgs({
  options: {
    sessions: { type: 'string', default: '30' },
    seed: { type: 'string' },
    kills: { type: 'string' },
    'chaos-seconds': { type: 'string' },
    json: { type: 'boolean', default: false },
  },
  strict: true,
});

const int = (name: string, v: string | undefined, min: number): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    console.error(`--${name} must be an integer >= ${min}`);
    process.exit(2);
  }
  return n;
};

async function main(): Promise<void> {
  const seed = int('seed', values.seed, 0) ?? Math.floor(Math.random() * 2 ** 31);
  const report = await runChaos({
    sessions: int('sessions', values.sessions, 1)!,
    seed,
    killsPerKind: int('kills', values.kills, 0),
    chaosSeconds: int('chaos-seconds', values['chaos-seconds'], 10),
    log: (line) => console.error(line),
  });
  console.log(formatChaosReport(report));
  if (values.json) console.log(JSON.stringify(report));
  await (await import('@livekit/rtc-node')).dispose();
  process.exit(report.ok ? 0 : 1);
}

main().catch((err) => {
  // Never without a verdict: the harness's own failure is a failed run, said as such.
  console.error(err);
  console.log('result  FAILED');
  console.log(`check failed: harness error: ${(err as Error)?.stack ?? String(err)}`);
  if (values.json) console.log(JSON.stringify({ ok: false, failures: [`harness error: ${String((err as Error)?.message ?? err)}`] }));
  process.exit(1);
});
