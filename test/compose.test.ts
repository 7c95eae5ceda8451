// docker-compose.yml is for users (no Docker engine runs here): check that it parses, that every
// process it runs is one of this repo's compiled entry points run with plain node (test/build.test.ts
// starts them), that secrets come from env files with documented examples and reach only the
// processes that use them, that nothing but LiveKit is published beyond the host, that Temporal's
// schema is set up the production way, and, when the compose client is installed, that
// `docker compose config` accepts it. The namespace script runs against a real Temporal dev server.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { parse } from 'yaml';
import { temporalCliPath } from '../src/dev/tools';
import { SEARCH_ATTRIBUTES } from '../workflows/shared';
import { startTemporal } from './helpers/temporal';

const ROOT = path.resolve(__dirname, '..');

interface Service {
  image?: string;
  build?: string;
  command?: string[];
  entrypoint?: string[];
  env_file?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  depends_on?: string[] | Record<string, { condition: string }>;
  container_name?: string;
}

/** The variables an env file (its .example) sets. */
function envFileKeys(file: string): string[] {
  return readFileSync(path.join(ROOT, `${file}.example`), 'utf8')
    .split('\n')
    .map((l) => /^([A-Z0-9_]+)=/.exec(l.trim())?.[1])
    .filter((k): k is string => !!k);
}

/** `[host_ip:]host_port:container_port[/proto]` → the host address it binds (all interfaces when none). */
function hostBinding(port: string): string {
  const parts = port.split(':');
  return parts.length === 3 ? parts[0]! : '0.0.0.0';
}

describe('docker-compose.yml', () => {
  const compose = parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, Service> };

  it('has the production-shaped services', () => {
    for (const name of ['postgresql', 'temporal', 'temporal-ui', 'livekit', 'worker', 'media-worker', 'api']) {
      assert.ok(compose.services[name], `service ${name}`);
    }
    assert.match(compose.services.temporal!.environment?.DB ?? '', /postgres/);
  });

  it('publishes only LiveKit beyond this host: Temporal, its UI and the API on 127.0.0.1, metrics and the database not at all', () => {
    const published: string[] = [];
    for (const [name, s] of Object.entries(compose.services)) {
      for (const p of s.ports ?? []) if (hostBinding(p) !== '127.0.0.1') published.push(`${name} ${p}`);
    }
    assert.deepEqual(published.sort(), ['livekit 7880:7880', 'livekit 7881:7881', 'livekit 7882:7882/udp']);
    assert.deepEqual(compose.services.temporal!.ports, ['127.0.0.1:7233:7233']);
    assert.deepEqual(compose.services['temporal-ui']!.ports, ['127.0.0.1:8233:8080']);
    for (const name of ['postgresql', 'worker', 'media-worker', 'temporal-schema', 'temporal-setup'])
      assert.equal(compose.services[name]!.ports, undefined, name);
    for (const p of compose.services.api!.ports ?? []) assert.ok(!/:9465\b|:9464\b/.test(p), `api publishes ${p}`);
    // The UI is not wired to a codec it could not authenticate to (the codec wants the operator's token).
    assert.equal(compose.services['temporal-ui']!.environment?.TEMPORAL_CODEC_ENDPOINT, undefined);
  });

  it("sets Temporal's schema up with temporal-sql-tool in a one-shot admin-tools service before the server starts (no auto-setup)", () => {
    for (const [name, s] of Object.entries(compose.services)) assert.ok(!/auto-setup/.test(s.image ?? ''), `${name} runs ${s.image}`);
    const server = compose.services.temporal!;
    assert.match(server.image ?? '', /^temporalio\/server:\d+\.\d+\.\d+$/);
    const schema = compose.services['temporal-schema']!;
    assert.match(schema.image ?? '', /^temporalio\/admin-tools:/);
    assert.equal(schema.image!.split(':')[1], server.image!.split(':')[1], 'admin-tools and server at the same version');
    assert.deepEqual((server.depends_on as Record<string, { condition: string }>)['temporal-schema'], { condition: 'service_completed_successfully' });
    const script = [...(schema.entrypoint ?? []), ...(schema.command ?? [])].find((c) => c.endsWith('.sh'))!;
    const mount = (schema.volumes ?? []).find((v) => v.split(':')[1] === script);
    assert.ok(mount, `${script} is mounted into the schema service`);
    const text = readFileSync(path.join(ROOT, mount.split(':')[0]!), 'utf8');
    for (const db of ['temporal', 'visibility']) {
      assert.match(text, /temporal-sql-tool --plugin postgres12/);
      assert.match(text, new RegExp(`\\$DBNAME:temporal|\\$VISIBILITY_DBNAME:visibility`), db);
    }
    assert.match(text, /setup-schema -v 0\.0/);
    assert.match(text, /update-schema -d "\$SCHEMA_DIR\/\$schema\/versioned"/);
    assert.ok(!/--pw|-pw |--password/.test(text), 'the password goes through SQL_PASSWORD, not the command line');
    assert.equal(spawnSync('sh', ['-n', path.join(ROOT, mount.split(':')[0]!)]).status, 0, 'the schema script parses');
    // The workers and the API wait for the namespace and search attributes.
    for (const name of ['worker', 'media-worker', 'api']) {
      assert.deepEqual(
        (compose.services[name]!.depends_on as Record<string, { condition: string }>)['temporal-setup'],
        { condition: 'service_completed_successfully' },
        name,
      );
    }
  });

  it('gives each process only the secrets it uses: the Runway key to the worker, the API and codec tokens to the API', () => {
    const keysOf = (name: string) => new Set((compose.services[name]!.env_file ?? []).flatMap(envFileKeys));
    assert.ok(keysOf('worker').has('RUNWAYML_API_SECRET'));
    for (const name of ['api', 'media-worker']) assert.ok(!keysOf(name).has('RUNWAYML_API_SECRET'), `${name} gets the Runway key`);
    for (const name of ['worker', 'media-worker']) {
      for (const k of ['SESSION_API_TOKEN', 'SESSION_CODEC_TOKEN']) assert.ok(!keysOf(name).has(k), `${name} gets ${k}`);
    }
    for (const k of ['SESSION_API_TOKEN', 'SESSION_CODEC_TOKEN', 'SESSION_SECRETS_KEY', 'LIVEKIT_API_SECRET']) assert.ok(keysOf('api').has(k), `api gets ${k}`);
    for (const name of ['temporal-ui', 'temporal-setup', 'livekit']) {
      assert.ok(![...keysOf(name)].some((k) => /SESSION_|RUNWAY/.test(k)), `${name} gets none of this service's secrets`);
    }
  });

  it("runs the image's compiled entry points with plain node (no tsx), each built from a source that exists", () => {
    const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    assert.match(dockerfile, /RUN npm run build/, 'the build stage compiles');
    assert.match(dockerfile, /COPY --from=build \/app\/dist \.\/dist/, 'the runtime stage gets the compiled output');
    const built = (JSON.parse(readFileSync(path.join(ROOT, 'tsconfig.build.json'), 'utf8')) as { include: string[] }).include;
    const entries = [/^CMD (\[.*\])$/m.exec(dockerfile)?.[1]].map((c) => JSON.parse(c ?? 'null') as string[] | null);
    for (const s of Object.values(compose.services)) if (s.build) entries.push(s.command ?? null);
    for (const command of entries) {
      assert.ok(command, 'a command');
      assert.equal(command[0], 'node');
      assert.ok(!command.some((c) => /tsx|\.ts$/.test(c)), `${command.join(' ')} needs no TypeScript loader`);
      const entry = command.find((c) => c.startsWith('dist/'));
      const source = entry?.replace(/^dist\//, '').replace(/\.js$/, '.ts');
      assert.ok(source && existsSync(path.join(ROOT, source)), `${entry} is built from ${source}, which exists`);
      assert.ok(built.includes(source.split('/')[0]!), `${source} is compiled by tsconfig.build.json`);
    }
  });

  it('keeps secrets in env files with documented examples, never inline', () => {
    for (const [name, s] of Object.entries(compose.services)) {
      for (const key of Object.keys(s.environment ?? {})) {
        assert.ok(!/SECRET|PASSWORD|TOKEN|API_KEY|SECRETS_KEY/.test(key), `${name} sets ${key} inline`);
      }
      for (const f of s.env_file ?? []) assert.ok(existsSync(path.join(ROOT, `${f}.example`)), `${f}.example documents ${name}'s environment`);
    }
  });

  it('lets the media worker scale (no fixed host ports or container name)', () => {
    const media = compose.services['media-worker']!;
    assert.equal(media.ports, undefined);
    assert.equal(media.container_name, undefined);
  });

  it('is accepted by `docker compose config` when the compose client is installed', (t) => {
    const probe = spawnSync('docker', ['compose', 'version'], { encoding: 'utf8' });
    if (probe.status !== 0) return t.skip('docker compose is not installed here (no engine is needed, only the client)');
    // As a user would run it: in a copy of the repo's compose files with deploy/*.env made from the examples.
    const dir = mkdtempSync(path.join(tmpdir(), 'compose-'));
    try {
      for (const f of ['docker-compose.yml', 'Dockerfile']) copyFileSync(path.join(ROOT, f), path.join(dir, f));
      mkdirSync(path.join(dir, 'deploy'));
      for (const f of readdirSync(path.join(ROOT, 'deploy'))) {
        copyFileSync(path.join(ROOT, 'deploy', f), path.join(dir, 'deploy', f.replace(/\.example$/, '')));
      }
      const res = spawnSync('docker', ['compose', 'config', '--format', 'json'], { cwd: dir, encoding: 'utf8' });
      assert.equal(res.status, 0, res.stderr);
      const resolved = JSON.parse(res.stdout) as { services: Record<string, { environment?: Record<string, string> }> };
      // The env files reached the services: the worker sees the Runway key variable from runway.env, the API does not.
      assert.ok('RUNWAYML_API_SECRET' in (resolved.services.worker?.environment ?? {}), 'runway.env is applied to the worker');
      assert.ok(!('RUNWAYML_API_SECRET' in (resolved.services.api?.environment ?? {})), 'the API gets no Runway key');
      assert.ok('SESSION_CODEC_TOKEN' in (resolved.services.api?.environment ?? {}), 'api.env is applied to the API');
      assert.equal(resolved.services.worker?.environment?.TEMPORAL_ADDRESS, 'temporal:7233');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('deploy/temporal-namespace.sh (the temporal-setup service), against a real Temporal server', () => {
  let env: TestWorkflowEnvironment;
  before(async () => {
    env = await startTemporal(); // its own search attributes are the default namespace's; the script's namespace starts empty
  });
  after(async () => {
    await env?.teardown();
  });

  it('creates the namespace and every search attribute this service uses, and runs again harmlessly', async () => {
    const run = () =>
      spawnSync('sh', [path.join(ROOT, 'deploy', 'temporal-namespace.sh')], {
        encoding: 'utf8',
        timeout: 120_000,
        // The admin-tools image has `temporal` on its PATH; here it is the CLI the tests use.
        env: {
          ...process.env,
          PATH: `${path.dirname(temporalCliPath())}:${process.env.PATH}`,
          TEMPORAL_ADDRESS: env.address,
          TEMPORAL_NAMESPACE: 'avatar-prod',
        },
      });
    const first = run();
    assert.equal(first.status, 0, first.stdout + first.stderr);
    assert.match(first.stdout, /namespace avatar-prod created/);
    const res = await env.connection.operatorService.listSearchAttributes({ namespace: 'avatar-prod' });
    for (const key of SEARCH_ATTRIBUTES) {
      const type = res.customAttributes?.[key.name];
      assert.ok(type !== undefined, `search attribute ${key.name} registered`);
      assert.equal(
        type,
        temporal.api.enums.v1.IndexedValueType[`INDEXED_VALUE_TYPE_${key.type}` as keyof typeof temporal.api.enums.v1.IndexedValueType],
        `${key.name} is ${key.type}`,
      );
    }
    const again = run();
    assert.equal(again.status, 0, again.stdout + again.stderr);
    assert.match(again.stdout, /namespace avatar-prod exists/);
    assert.equal((again.stdout.match(/search attribute \w+ exists/g) ?? []).length, SEARCH_ATTRIBUTES.length);
  });
});
