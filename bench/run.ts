// `npm run bench` (as root): faithd6 side by side with direct TCP, a bare Node pipe() relay,
// socat and haproxy (installed from Debian when missing), in a network namespace of its own.
// This file builds the load generator (bench/gen.c → dist/bench/gen) and owns the namespace:
// it creates f6b-<pid> (lo up, 198.18.0.1/32 on lo, TIME_WAIT reuse and a wide ephemeral port
// range, so that connection churn does not run out of ports), runs bench/suite.ts inside it,
// and always deletes it again: on success, on error, on SIGINT/SIGTERM, and after a time limit.
// With `--rev REV` (repeatable) it first builds faithd6 as it was at REV in a worktree of its
// own (bench/revisions.ts), for the suite to measure beside the current tree, and always
// removes those worktrees again the same way. Other options are passed to the suite (see
// bench/README.md).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildGenerator, ensurePeers } from './install.js';
import { resolveRevisions, RevisionUsageError, takeRevisionOptions, Worktrees, type Revision } from './revisions.js';

const NS = `f6b-${process.pid}`;
const HERE = fileURLToPath(new URL('./', import.meta.url));
/** The repository the bench lives in (this file runs as dist/bench/run.js): `--rev` names its commits. */
const ROOT = join(HERE, '..', '..');
const SUITE = join(HERE, 'suite.js');
const DAEMON = join(HERE, '..', 'src', 'cli', 'main.js');
/** The load generator and IPv4 server: its source in the repository, its program next to this file. */
const GEN_SOURCE = join(HERE, '..', '..', 'bench', 'gen.c');
const GEN = join(HERE, 'gen');
/** Well above the ~5 minutes a default run takes (7 rows): only a hung run reaches it. */
const TIME_LIMIT_MS = 12 * 60_000;
/** What a `--rev` row adds to it: its figures (about 40 s by default) with room to spare. */
const TIME_LIMIT_PER_REVISION_MS = 2 * 60_000;
/**
 * Open files for the suite and everything it starts: 5,000 idle relayed connections are
 * 10,000 descriptors in the relay, 5,000 in the holder and 5,000 in the server.
 */
const NOFILE = 65_536;

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${(r.stderr || r.error?.message || '').trim()}`);
}

/** The `--rev` trees, removed at the end like the namespace. */
const worktrees = new Worktrees(ROOT);

/** Set just before `ip netns add`: before it, there is no namespace to delete. */
let created = false;
let deleted = false;
/** Kill what is left in the namespace (only the bench's own processes can be there), then delete it. */
function deleteNamespace(): void {
  if (!created || deleted) return;
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
  // The revisions first: a wrong one stops the bench before anything is installed or made.
  let revisions: Revision[];
  let suiteArgs: string[];
  try {
    const { revs, rest } = takeRevisionOptions(process.argv.slice(2));
    revisions = resolveRevisions(ROOT, revs);
    suiteArgs = rest;
  } catch (err) {
    if (!(err instanceof RevisionUsageError)) throw err;
    say(`bench: ${err.message}`);
    return 64; // EX_USAGE
  }
  ensurePeers(say);
  buildGenerator(GEN_SOURCE, GEN, say);

  // From here on a signal stops what runs (a build step, then the suite) and main returns, so
  // that the worktrees and the namespace are removed on the way out.
  let interrupted = false;
  let stopSuite: (sig: NodeJS.Signals) => void = () => {};
  const building = new AbortController();
  const onSignal = (): void => {
    interrupted = true;
    building.abort();
    stopSuite('SIGTERM'); // it stops its own children; the namespace goes after it exits
    setTimeout(() => stopSuite('SIGKILL'), 15_000).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);

  if (revisions.length > 0) {
    process.on('exit', () => worktrees.remove(say));
    for (const rev of revisions) {
      try {
        await worktrees.add(rev, building.signal, say);
      } catch (err) {
        if (interrupted) return 130;
        throw err;
      }
    }
    say(`bench: built ${revisions.map((r) => `faithd6 @${r.short} in ${r.tree}`).join(', ')}`);
  }
  if (interrupted) return 130;
  // The suite gets each tree as JSON: what was asked for, the commit and where it is built.
  for (const rev of revisions) suiteArgs.push('--rev-tree', JSON.stringify(rev));

  process.on('exit', deleteNamespace);
  created = true;
  ip(['netns', 'add', NS]);
  ip(['-n', NS, 'link', 'set', 'lo', 'up']);
  ip(['-n', NS, 'addr', 'add', '198.18.0.1/32', 'dev', 'lo']);
  // The source address of the faithd6 +source row.
  ip(['-n', NS, 'addr', 'add', '198.18.0.9/32', 'dev', 'lo']);
  const sysctl = spawnSync('ip', ['netns', 'exec', NS, 'sysctl', '-q', '-w', 'net.ipv4.tcp_tw_reuse=1', 'net.ipv4.ip_local_port_range=10000 65000'], {
    encoding: 'utf8',
  });
  if (sysctl.status !== 0) process.stderr.write(`bench: sysctl in ${NS} failed (churn may run out of ports): ${sysctl.stderr}\n`);
  process.stderr.write(`bench: namespace ${NS} created\n`);

  // prlimit and `ip netns exec` exec the program, so the child's pid is the suite's own; its
  // children inherit the descriptor limit.
  // Raising the hard limit needs CAP_SYS_RESOURCE, which a container may not grant; then the
  // inherited limit stays (Node raises its soft limit to the hard one by itself).
  const nofile = [`--nofile=${NOFILE}:${NOFILE}`];
  const raise = spawnSync('prlimit', [...nofile, 'true'], { encoding: 'utf8' });
  const limit = spawnSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout.trim();
  if (raise.status !== 0)
    process.stderr.write(
      `bench: cannot raise the open files limit to ${NOFILE} (${(raise.stderr || raise.error?.message || '').trim()}): it stays at ${limit}\n`,
    );
  const prefix = raise.status === 0 ? ['prlimit', ...nofile] : [];
  const command = [...prefix, 'ip', 'netns', 'exec', NS, process.execPath, SUITE, ...suiteArgs];
  const suite = spawn(command[0]!, command.slice(1), { stdio: 'inherit' });
  stopSuite = (sig) => {
    if (suite.pid === undefined || suite.exitCode !== null || suite.signalCode !== null) return;
    try {
      process.kill(suite.pid, sig);
    } catch {
      // gone already
    }
  };
  // --variants adds four rows, each a --rev row's worth.
  const rows = revisions.length + (suiteArgs.includes('--variants') ? 4 : 0);
  const timeLimitMs = TIME_LIMIT_MS + rows * TIME_LIMIT_PER_REVISION_MS;
  const timeLimit = setTimeout(() => {
    process.stderr.write(`bench: no result after ${timeLimitMs / 60_000} min: stopping\n`);
    onSignal();
  }, timeLimitMs);
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

void main()
  .catch((err: Error) => {
    process.stderr.write(`bench: ${err.message}\n`);
    return 1;
  })
  .then((code) => {
    deleteNamespace();
    worktrees.remove((line) => void process.stderr.write(line + '\n'));
    process.exitCode = code;
  });
