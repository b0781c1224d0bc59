// `npm run bench` (as root): faithd6 side by side with direct TCP, a bare Node pipe() relay,
// socat and haproxy (installed from Debian when missing), in a network namespace of its own.
// This file builds the load generator (bench/gen.c → dist/bench/gen) and owns the namespace:
// it creates f6b-<pid> (lo up, 198.18.0.1/32 on lo, TIME_WAIT reuse and a wide ephemeral port
// range, so that connection churn does not run out of ports), runs bench/suite.ts inside it,
// and always deletes it again: on success, on error, on SIGINT/SIGTERM, and after a time limit.
// Options are passed to the suite (see bench/README.md).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildGenerator, ensurePeers } from './install.js';

const NS = `f6b-${process.pid}`;
const HERE = fileURLToPath(new URL('./', import.meta.url));
const SUITE = join(HERE, 'suite.js');
const DAEMON = join(HERE, '..', 'src', 'cli', 'main.js');
/** The load generator and IPv4 server: its source in the repository, its program next to this file. */
const GEN_SOURCE = join(HERE, '..', '..', 'bench', 'gen.c');
const GEN = join(HERE, 'gen');
/** Well above the ~5 minutes a default run takes (7 rows): only a hung run reaches it. */
const TIME_LIMIT_MS = 12 * 60_000;
/**
 * Open files for the suite and everything it starts: 5,000 idle relayed connections are
 * 10,000 descriptors in the relay, 5,000 in the holder and 5,000 in the server.
 */
const NOFILE = 65_536;

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
  const say = (line: string): void => void process.stderr.write(line + '\n');
  ensurePeers(say);
  buildGenerator(GEN_SOURCE, GEN, say);
  process.on('exit', deleteNamespace);
  ip(['netns', 'add', NS]);
  ip(['-n', NS, 'link', 'set', 'lo', 'up']);
  ip(['-n', NS, 'addr', 'add', '198.18.0.1/32', 'dev', 'lo']);
  const sysctl = spawnSync('ip', ['netns', 'exec', NS, 'sysctl', '-q', '-w', 'net.ipv4.tcp_tw_reuse=1', 'net.ipv4.ip_local_port_range=10000 65000'], { encoding: 'utf8' });
  if (sysctl.status !== 0) process.stderr.write(`bench: sysctl in ${NS} failed (churn may run out of ports): ${sysctl.stderr}\n`);
  process.stderr.write(`bench: namespace ${NS} created\n`);

  // prlimit and `ip netns exec` exec the program, so the child's pid is the suite's own; its
  // children inherit the descriptor limit.
  // Raising the hard limit needs CAP_SYS_RESOURCE, which a container may not grant; then the
  // inherited limit stays (Node raises its soft limit to the hard one by itself).
  const nofile = [`--nofile=${NOFILE}:${NOFILE}`];
  const raise = spawnSync('prlimit', [...nofile, 'true'], { encoding: 'utf8' });
  const limit = spawnSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout.trim();
  if (raise.status !== 0) process.stderr.write(`bench: cannot raise the open files limit to ${NOFILE} (${(raise.stderr || raise.error?.message || '').trim()}): it stays at ${limit}\n`);
  const prefix = raise.status === 0 ? ['prlimit', ...nofile] : [];
  const command = [...prefix, 'ip', 'netns', 'exec', NS, process.execPath, SUITE, ...process.argv.slice(2)];
  const suite = spawn(command[0]!, command.slice(1), { stdio: 'inherit' });
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
  const timeLimit = setTimeout(() => {
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
  clearTimeout(timeLimit);
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
