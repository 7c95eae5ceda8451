// Where the project's external binaries live. Order: an explicit env var, then PATH (for `temporal`),
// then ./.tools/bin where scripts/install-tools.sh puts them.
import { accessSync, constants } from 'node:fs';
import path from 'node:path';

export const PROJECT_ROOT = path.resolve(__dirname, '..', '..');
export const TOOLS_BIN = path.join(PROJECT_ROOT, '.tools', 'bin');

function executable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    if (executable(candidate)) return candidate;
  }
  return undefined;
}

function resolveTool(envVar: string, name: string, searchPath: boolean): string {
  const fromEnv = process.env[envVar];
  if (fromEnv) {
    if (!executable(fromEnv)) throw new Error(`${envVar}=${fromEnv} is not an executable file; fix the path or unset it`);
    return fromEnv;
  }
  const bundled = path.join(TOOLS_BIN, name);
  if (executable(bundled)) return bundled;
  const found = searchPath ? onPath(name) : undefined;
  if (found) return found;
  throw new Error(`${name} not found: run \`npm run setup\` (scripts/install-tools.sh) or set ${envVar}=/path/to/${name}`);
}

export const temporalCliPath = () => resolveTool('TEMPORAL_CLI_PATH', 'temporal', true);
export const temporalTestServerPath = () => resolveTool('TEMPORAL_TEST_SERVER_PATH', 'temporal-test-server', true);
export const livekitServerPath = () => resolveTool('LIVEKIT_SERVER_PATH', 'livekit-server', true);
