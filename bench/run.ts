// `npm run bench` (as root): faithd6 side by side with direct TCP, a bare Node pipe() relay and
// socat, in a network namespace of its own. This file only owns the namespace: it creates
// f6b-<pid> (lo up, 198.18.0.1/32 on lo, TIME_WAIT reuse and a wide ephemeral port range, so
// that connection churn does not run out of ports), runs bench/suite.ts inside it, and always
// deletes it again: on success, on error, on SIGINT/SIGTERM, and after a time limit.
// Options are passed to the suite: --rounds N (5), --bulk-mib N, --churn-ms N, --idle N, --log LEVEL.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const NS = `f6b-${process.pid}`;
const HERE = fileURLToPath(new URL('./', import.meta.url));
const SUITE = join(HERE, 'suite.js');
const DAEMON = join(HERE, '..', 'src', 'cli', 'main.js');
/** Far above the ~3 minutes a run takes: only a hung run reaches it. */
const TIME_LIMIT_MS = 10 * 60_000;

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${(r.stderr || r.error?.message || '').trim()}`);
}

let deleted = false;
/** Kill what is left in the namespace (only the bench's own processes can be there), then delete it. */
function deleteNamespace(): void {
  if (deleted) return;
  deleted = true;
  const pids = (spawnSync('ip', ['netns', 'pids', NS], { encoding: 'utf8' }).stdout ?? '')
    .split('\n')
    .map(Number)
    .filter((pid) => Number.isInteger(pid) && pid > 0 && pid !== process.pid);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  spawnSync('ip', ['netns', 'del', NS]);
  const left = (spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '').split('\n').some((l) => l.split(' ')[0] === NS);
  process.stderr.write(left ? `bench: WARNING: could not delete namespace ${NS}\n` : `bench: namespace ${NS} deleted\n`);
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench: needs root (it creates a network namespace): sudo npm run bench\n');
    return 77;
  }
  for (const file of [SUITE, DAEMON]) {
    if (!existsSync(file)) {
      process.stderr.write(`bench: ${file} is missing: run npm run build && tsc -p bench/tsconfig.json (npm run bench does both)\n`);
      return 1;
    }
  }
  process.on('exit', deleteNamespace);
  ip(['netns', 'add', NS]);
  ip(['-n', NS, 'link', 'set', 'lo', 'up']);
  ip(['-n', NS, 'addr', 'add', '198.18.0.1/32', 'dev', 'lo']);
  const sysctl = spawnSync('ip', ['netns', 'exec', NS, 'sysctl', '-q', '-w', 'net.ipv4.tcp_tw_reuse=1', 'net.ipv4.ip_local_port_range=10000 65000'], { encoding: 'utf8' });
  if (sysctl.status !== 0) process.stderr.write(`bench: sysctl in ${NS} failed (churn may run out of ports): ${sysctl.stderr}\n`);
  process.stderr.write(`bench: namespace ${NS} created\n`);

  // `ip netns exec` execs the program, so the child's pid is the suite's own.
  const suite = spawn('ip', ['netns', 'exec', NS, process.execPath, SUITE, ...process.argv.slice(2)], { stdio: 'inherit' });
  const stopSuite = (sig: NodeJS.Signals): void => {
    if (suite.pid === undefined || suite.exitCode !== null || suite.signalCode !== null) return;
    try {
      process.kill(suite.pid, sig);
    } catch {
      // gone already
    }
  };
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    interrupted = true;
    stopSuite('SIGTERM'); // it stops its own children; the namespace goes after it exits
    setTimeout(() => stopSuite('SIGKILL'), 15_000).unref();
    void sig;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  const limit = setTimeout(() => {
    process.stderr.write(`bench: no result after ${TIME_LIMIT_MS / 60_000} min: stopping\n`);
    onSignal('SIGTERM');
  }, TIME_LIMIT_MS);
  const code = await new Promise<number>((resolve) => {
    suite.on('error', (err) => {
      process.stderr.write(`bench: ${err.message}\n`);
      resolve(1);
    });
    suite.on('close', (c, signal) => resolve(c ?? (signal ? 128 : 1)));
  });
  clearTimeout(limit);
  return interrupted && code === 0 ? 130 : code;
}

main()
  .catch((err: Error) => {
    process.stderr.write(`bench: ${err.message}\n`);
    return 1;
  })
  .then((code) => {
    deleteNamespace();
    process.exitCode = code;
  });
