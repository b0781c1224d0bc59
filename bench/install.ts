// What the bench needs besides Node, from Debian: the peer relays it compares faithd6 with
// (socat and haproxy), iperf3, and a C compiler for its load generator (bench/gen.c), which it builds
// here. Installed with apt-get when missing (the bench runs as root); `apt-get update` only if
// the first attempt fails (a fresh machine has no package lists yet). Without a network the
// install fails: the bench goes on without the peers' rows ("not installed"), but not without
// its generator.
import { spawnSync } from 'node:child_process';

/** Debian package → the program the bench runs. */
const PACKAGES: Readonly<Record<string, string>> = { socat: 'socat', haproxy: 'haproxy', iperf3: 'iperf3' };
/** Each apt-get call; a mirror that hangs must not hold the bench. */
const APT_TIMEOUT_MS = 4 * 60_000;
/** The generator's build: plain C11 and POSIX threads, no warning let through. */
const CFLAGS = ['-std=c11', '-O2', '-Wall', '-Wextra', '-Werror', '-pthread'];

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

function aptInstall(packages: string[], say: (line: string) => void): void {
  const args = ['install', '-y', '--no-install-recommends', ...packages];
  if (!apt(args, say) && apt(['update'], say)) apt(args, say);
}

/** Installs the missing peer relays; says what it did. Returns the programs that are there afterwards. */
export function ensurePeers(say: (line: string) => void): Record<string, boolean> {
  const missing = Object.keys(PACKAGES).filter((pkg) => !installed(PACKAGES[pkg]!));
  if (missing.length === 0) say(`bench: ${Object.keys(PACKAGES).join(', ')} already installed`);
  else {
    say(`bench: installing ${missing.join(', ')} from Debian (peer relays to compare with, and iperf3)`);
    aptInstall(missing, say);
  }
  const present: Record<string, boolean> = {};
  for (const [pkg, program] of Object.entries(PACKAGES)) {
    present[program] = installed(program);
    if (missing.includes(pkg)) say(`bench: ${pkg} ${present[program] ? 'installed' : 'not installed: its figures are skipped'}`);
  }
  return present;
}

/**
 * Compiles the load generator `source` (bench/gen.c) to `program`, first installing gcc and
 * libc6-dev from Debian when there is no `cc`. Throws when it cannot: the bench has no other.
 */
export function buildGenerator(source: string, program: string, say: (line: string) => void): void {
  if (!installed('cc')) {
    say('bench: no C compiler (cc): installing gcc and libc6-dev from Debian to build the load generator (bench/gen.c)');
    aptInstall(['gcc', 'libc6-dev'], say);
    if (!installed('cc')) throw new Error('no C compiler (cc), and gcc could not be installed: the load generator (bench/gen.c) cannot be built');
    say('bench: gcc installed');
  }
  const r = spawnSync('cc', [...CFLAGS, '-o', program, source], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cc ${CFLAGS.join(' ')} -o ${program} ${source} failed: ${(r.stderr || r.error?.message || '').trim()}`);
}
