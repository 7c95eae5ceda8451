// The production build (`npm run build`, what the Dockerfile's build stage runs): compiled CommonJS in
// an outDir plus a workflow bundle made at build time. The compiled entry points the compose services
// run start with plain `node` (no tsx) against a real Temporal dev server, and the session worker
// runs workflows from the prebuilt bundle instead of bundling at start.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { SessionsClient } from '../src/client/sessions';
import { freePort } from '../src/dev/net';
import { reapChildrenOnExit } from '../src/dev/child';
import { startTemporalDevServer, type TemporalDevServer } from '../src/dev/temporal-server';
import { encryptedDataConverter } from '../src/secrets/payload-codec';
import { sessionWorkflowId } from '../workflows/shared';
import { eventually, withTimeout } from './helpers/wait';

reapChildrenOnExit();

const ROOT = path.resolve(__dirname, '..');
// Inside the repo, so the compiled code resolves node_modules the way dist/ does.
const OUT = path.join(ROOT, 'test-artifacts', `build-${process.pid}`);
const LOGS = path.join(ROOT, 'test-artifacts', 'logs');

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name));
}

/** Runs a compiled entry point with plain node; resolves `started` once its log says `ready`. */
function runCompiled(
  entry: string,
  env: NodeJS.ProcessEnv,
  ready: RegExp,
): { child: ChildProcess; started: Promise<void>; log: () => string; stop: () => Promise<void> } {
  const logFile = path.join(LOGS, `build-${path.basename(entry, '.js')}-${process.pid}.log`);
  const out = createWriteStream(logFile);
  // No --import tsx, and nothing inherited that could load it.
  const child = spawn(process.execPath, [path.join(OUT, entry)], { cwd: ROOT, env: { ...env, NODE_OPTIONS: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const started = new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer) => {
      out.write(d);
      text += d.toString();
      if (ready.test(text)) resolve();
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    void exited.then(() => reject(new Error(`${entry} exited before it started:\n${text.slice(-2000)}`)));
  });
  started.catch(() => undefined);
  return {
    child,
    started,
    log: () => text,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await withTimeout(exited, 20_000, `${entry} to stop`).catch(() => child.kill('SIGKILL'));
    },
  };
}

describe('production build: compiled JavaScript and a prebuilt workflow bundle', () => {
  let temporal: TemporalDevServer;
  const secretsKey = randomBytes(32);
  let env: NodeJS.ProcessEnv;

  before(async () => {
    mkdirSync(LOGS, { recursive: true });
    const build = spawnSync('npm', ['run', 'build', '--', OUT], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
    assert.equal(build.status, 0, `npm run build failed:\n${build.stdout}\n${build.stderr}`);
    temporal = await startTemporalDevServer({ logFile: path.join(LOGS, `build-temporal-${process.pid}.log`) });
    env = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      NODE_ENV: 'production',
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_NAMESPACE: 'default',
      RUNWAYML_API_SECRET: `key_${randomBytes(16).toString('hex')}`,
      // Nothing listens here: the session's first Runway call fails and retries, which is fine for this test.
      RUNWAYML_BASE_URL: 'http://127.0.0.1:9',
      LIVEKIT_URL: 'ws://127.0.0.1:9',
      LIVEKIT_API_KEY: 'k',
      LIVEKIT_API_SECRET: randomBytes(24).toString('hex'),
      SESSION_SECRETS_KEY: secretsKey.toString('base64'),
      REAPER_INTERVAL_SECONDS: '0',
      METRICS_PORT: '0',
      LOG_LEVEL: 'info',
    };
  });
  after(async () => {
    await temporal?.stop();
    rmSync(OUT, { recursive: true, force: true });
  });

  it('emits JavaScript only (no TypeScript to load at run time) and the workflow bundle', () => {
    const files = filesUnder(OUT).map((f) => path.relative(OUT, f));
    for (const entry of ['src/worker.js', 'src/media-worker.js', 'src/api/main.js', 'workflows/index.js', 'workflow-bundle.js']) {
      assert.ok(files.includes(entry), `${entry} built`);
    }
    assert.deepEqual(
      files.filter((f) => /\.ts$/.test(f)),
      [],
    );
    assert.ok(
      files.every((f) => /^(src|activities|workflows)\/|^workflow-bundle\.js$/.test(f)),
      'only src/, activities/, workflows/ and the bundle',
    );
    assert.match(readFileSync(path.join(OUT, 'workflow-bundle.js'), 'utf8'), /avatarSession/, 'the session workflow is in the bundle');
  });

  it('the session worker starts with plain node, loads the prebuilt bundle and runs a workflow from it', async () => {
    const worker = runCompiled('src/worker.js', env, /session worker started/);
    const connection = await Connection.connect({ address: temporal.address });
    const conversationId = `build-${process.pid}`;
    try {
      await withTimeout(worker.started, 90_000, 'the compiled worker to start');
      // Bundling at start logs this (through the runtime logger); the prebuilt bundle needs no bundling.
      assert.doesNotMatch(worker.log(), /Workflow bundle created/);
      const sessions = new SessionsClient(new Client({ connection, dataConverter: encryptedDataConverter([secretsKey]) }));
      await sessions.startSession({
        conversationId,
        avatar: { type: 'runway-preset', presetId: 'cooking-teacher' },
        livekit: { roomName: `room-${conversationId}` },
      });
      // A query is answered by the workflow code running in the worker: the bundle's.
      const state = await eventually('the session workflow to answer a query', () => sessions.getSession(conversationId).catch(() => undefined), 30_000);
      assert.equal(typeof state.phase, 'string');
    } finally {
      await connection.workflowService
        .terminateWorkflowExecution({ namespace: 'default', workflowExecution: { workflowId: sessionWorkflowId(conversationId) } })
        .catch(() => undefined);
      await connection.close();
      await worker.stop();
    }
  });

  it('the media worker and the HTTP API start with plain node too', async () => {
    const media = runCompiled('src/media-worker.js', env, /media worker started/);
    const api = runCompiled(
      'src/api/main.js',
      {
        ...env,
        API_HOST: '127.0.0.1',
        API_PORT: String(await freePort()),
        API_METRICS_PORT: '0',
        SESSION_API_TOKEN: randomBytes(24).toString('hex'),
      },
      /api started/,
    );
    try {
      await withTimeout(Promise.all([media.started, api.started]), 90_000, 'the compiled media worker and API to start');
    } finally {
      await Promise.all([media.stop(), api.stop()]);
    }
    assert.ok(existsSync(path.join(OUT, 'src', 'api', 'demo', 'index.html')), "the demo page's static files are copied");
  });
});
