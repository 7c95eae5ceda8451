// docker-compose.yml is for users (no Docker engine runs here): check that it parses, that every
// process it runs exists in this repo, that secrets come from env files with documented examples,
// and, when the compose client is installed, that `docker compose config` accepts it.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';

const ROOT = path.resolve(__dirname, '..');

interface Service {
  image?: string;
  build?: string;
  command?: string[];
  env_file?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  container_name?: string;
}

describe('docker-compose.yml', () => {
  const compose = parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, Service> };

  it('has the production-shaped services', () => {
    for (const name of ['postgresql', 'temporal', 'temporal-ui', 'livekit', 'worker', 'media-worker', 'api']) {
      assert.ok(compose.services[name], `service ${name}`);
    }
    assert.match(compose.services.temporal!.environment?.DB ?? '', /postgres/);
    assert.ok(compose.services['temporal-ui']!.environment?.TEMPORAL_CODEC_ENDPOINT, 'the UI is wired to the codec server');
  });

  it('runs only entry points that exist, from the Dockerfile', () => {
    assert.ok(existsSync(path.join(ROOT, 'Dockerfile')));
    for (const [name, s] of Object.entries(compose.services)) {
      if (!s.build) continue;
      const entry = s.command?.find((c) => c.endsWith('.ts'));
      assert.ok(entry && existsSync(path.join(ROOT, entry)), `${name} runs ${entry}, which exists`);
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
      // The env files reached the services: the worker sees the Runway key variable from service.env.
      assert.ok('RUNWAYML_API_SECRET' in (resolved.services.worker?.environment ?? {}), 'service.env is applied to the worker');
      assert.equal(resolved.services.worker?.environment?.TEMPORAL_ADDRESS, 'temporal:7233');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
