// Headless Chromium for the browser tests: Debian's `chromium` package driven by playwright-core
// (no browser download). Installed on first use with apt-get when missing (CI, fresh machines);
// CHROMIUM_PATH names another binary.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

function run(cmd: string, args: string[]): boolean {
  const asRoot = process.getuid?.() === 0;
  const res = asRoot
    ? spawnSync(cmd, args, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
    : spawnSync('sudo', ['-n', 'env', 'DEBIAN_FRONTEND=noninteractive', cmd, ...args], { stdio: 'inherit' });
  return res.status === 0;
}

/** Idempotent: returns at once when the binary is there. */
export function ensureChromium(): string {
  if (existsSync(CHROMIUM_PATH)) return CHROMIUM_PATH;
  if (process.env.CHROMIUM_PATH) throw new Error(`CHROMIUM_PATH=${CHROMIUM_PATH} does not exist`);
  const hasApt = spawnSync('sh', ['-c', 'command -v apt-get'], { stdio: 'ignore' }).status === 0;
  if (!hasApt) throw new Error(`no Chromium at ${CHROMIUM_PATH} and no apt-get to install it: install Chromium and set CHROMIUM_PATH`);
  // Other apt users on the machine hold the dpkg lock for a while: wait for it rather than fail.
  const install = ['-o', 'DPkg::Lock::Timeout=600', 'install', '-y', 'chromium'];
  if (!run('apt-get', install)) {
    if (!run('apt-get', ['-o', 'DPkg::Lock::Timeout=600', 'update']) || !run('apt-get', install)) {
      throw new Error('apt-get install chromium failed (run it yourself, as root or with sudo, or set CHROMIUM_PATH)');
    }
  }
  if (!existsSync(CHROMIUM_PATH)) throw new Error(`apt-get installed chromium, but ${CHROMIUM_PATH} is missing`);
  return CHROMIUM_PATH;
}

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: ensureChromium(),
    args: [...(process.getuid?.() === 0 ? ['--no-sandbox'] : []), '--autoplay-policy=no-user-gesture-required', '--use-fake-ui-for-media-stream'],
  });
}
