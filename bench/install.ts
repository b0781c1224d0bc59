// The peer relays the bench compares faithd6 with, from Debian: socat and haproxy. Installed
// with apt-get when missing (the bench runs as root); `apt-get update` only if the first
// attempt fails (a fresh machine has no package lists yet). Without a network the install
// fails, and the bench goes on without those rows ("not installed").
import { spawnSync } from 'node:child_process';

/** Debian package → the program the bench runs. */
const PACKAGES: Readonly<Record<string, string>> = { socat: 'socat', haproxy: 'haproxy' };
/** Each apt-get call; a mirror that hangs must not hold the bench. */
const APT_TIMEOUT_MS = 4 * 60_000;

function installed(program: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${program}`], { stdio: 'ignore' }).status === 0;
}

function apt(args: string[], say: (line: string) => void): boolean {
  say(`bench: apt-get ${args.join(' ')}`);
  const r = spawnSync('apt-get', args, {
    encoding: 'utf8',
    timeout: APT_TIMEOUT_MS,
    // No questions, and no service started by the package's scripts (haproxy's would listen).
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive', RUNLEVEL: '1' },
    maxBuffer: 16 * 1024 * 1024,
  });
  if (r.status === 0) return true;
  const why = r.error?.message ?? (r.stderr || r.stdout || '').trim().split('\n').slice(-2).join(' / ');
  say(`bench: apt-get ${args[0]} failed: ${why}`);
  return false;
}

/** Installs the missing peer relays; says what it did. Returns the programs that are there afterwards. */
export function ensurePeers(say: (line: string) => void): Record<string, boolean> {
  const missing = Object.keys(PACKAGES).filter((pkg) => !installed(PACKAGES[pkg]!));
  if (missing.length === 0) say(`bench: ${Object.keys(PACKAGES).join(' and ')} already installed`);
  else {
    say(`bench: installing ${missing.join(' and ')} from Debian (peer relays to compare with)`);
    const args = ['install', '-y', '--no-install-recommends', ...missing];
    if (!apt(args, say) && apt(['update'], say)) apt(args, say);
  }
  const present: Record<string, boolean> = {};
  for (const [pkg, program] of Object.entries(PACKAGES)) {
    present[program] = installed(program);
    if (missing.includes(pkg)) say(`bench: ${pkg} ${present[program] ? 'installed' : 'not installed: its rows are skipped'}`);
  }
  return present;
}
