// Descriptor exhaustion: the worker's descriptor limit is lowered to 64 (prlimit on its pid),
// then it faces more connections than it has descriptors, and then many times its limit of
// refused connections (denied, not translated, backend refused, connect timeout). It survives (same pid, no
// restart), refuses what it cannot take, serves again once descriptors are free, and ends with
// as many descriptors as it started with: no refusal path leaks one.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import t from 'tap';
import { ADDR, buildNetwork, isDone, translate, type Line, type Proc } from '../fixtures/netns.js';
import { daemonStatus, startDaemon } from '../fixtures/daemon.js';

const execFileP = promisify(execFile);
const PORT = 5999;
const NOFILE = 64;
const HELD = 150;
const AT_ONCE = 50;
/** Baseline ± this many: a timer or a lookup may hold one briefly. */
const SLACK = 3;
const DST6 = translate(ADDR.server4);

const net = await buildNetwork(t);
const daemon = await startDaemon(t, net, {
  services: [{ port: PORT }],
  timeouts: { connect: '1s' },
  // The other limits stay out of the way: this is about descriptors.
  limits: { newConnectionsPerSecond: 0, pendingConnectsPerSource: 1024 },
});
const echo = net.peer('s4', ['server', 'echo', '--host', ADDR.server4, '--port', String(PORT), '--timeout', '90']);
await echo.waitFor((l) => l.event === 'listening', { timeout: 5000, what: 'echo server listening' });

const pid = daemon.workerPid(PORT);
if (pid === undefined) throw new Error('no "worker started" line for the port');
const fds = (): number => readdirSync(`/proc/${pid}/fd`).length;
const nofile = (): number[] => (/^Max open files\s+(\d+)\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8')) ?? []).slice(1).map(Number);
const workerStarts = (): number => daemon.proc.filter((l) => l.msg === 'worker started').length;

function client(args: string[], host = DST6): Proc {
  return net.peer('c6', ['client', ...args, '--host', host, '--port', String(PORT), '--timeout', '30']);
}

async function echoOnce(what: string): Promise<Line> {
  return client(['echo', '4K']).waitFor(isDone(), { timeout: 10_000, what });
}

function countEnds(lines: Line[]): Record<string, number> {
  const ends: Record<string, number> = {};
  for (const l of lines) ends[String(l.end)] = (ends[String(l.end)] ?? 0) + 1;
  return ends;
}

/** Waits (bounded) until `check` holds; returns whether it did. */
async function until(timeout: number, check: () => boolean | Promise<boolean>): Promise<boolean> {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
}

/**
 * prlimit(2) on another process needs CAP_SYS_RESOURCE, or the caller's uids and gids all equal
 * the target's. Root in this container lacks CAP_SYS_RESOURCE and the worker runs as nobody, so
 * prlimit runs as the worker's own user and group (lowering a limit needs no privilege).
 */
async function lowerDescriptorLimit(target: number, limit: number): Promise<void> {
  const status = readFileSync(`/proc/${target}/status`, 'utf8');
  const uid = /^Uid:\s+(\d+)/m.exec(status)?.[1];
  const gid = /^Gid:\s+(\d+)/m.exec(status)?.[1];
  if (uid === undefined || gid === undefined) throw new Error(`no Uid/Gid in /proc/${target}/status`);
  await execFileP('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', 'prlimit', '--pid', String(target), `--nofile=${limit}:${limit}`], {
    timeout: 10_000,
  });
}

// One connection first, so that whatever the worker opens lazily is open for the baseline.
const warm = await echoOnce('warm-up echo');
if (warm.intact !== true) throw new Error(`warm-up echo failed: ${JSON.stringify(warm)}`);
await sleep(300);
const baseline = fds();
await lowerDescriptorLimit(pid, NOFILE);
// The worker reads its descriptor limit once a second: give it the chance to see the new one.
await sleep(1_500);

t.test(`${HELD} held connections against a worker with ${NOFILE} descriptors`, async (t) => {
  t.same(nofile(), [NOFILE, NOFILE], `the worker's descriptor limit is ${NOFILE} (${baseline} in use)`);
  // sink: sends nothing and holds the connection until the other side closes it.
  const hold = client(['sink', '--conns', String(HELD)]);
  // Settled: every connection is up or has ended, and nothing changed for half a second.
  let last = '';
  const settled = await until(15_000, async () => {
    // Every connection heard of (connected, or ended), and nothing changed for 400 ms: a slow
    // start of the client must not look like a quiet worker.
    const heard = new Set(hold.filter((l) => l.event === 'connected' || isDone()(l)).map((l) => l.conn)).size;
    const now = `${hold.filter((l) => l.event === 'connected').length}/${hold.filter(isDone()).length}/${fds()}`;
    if (heard >= HELD && now === last) return true;
    last = now;
    await sleep(400);
    return false;
  });
  t.ok(settled, `settled (connected/closed/worker fds: ${last})`);
  const closed = hold.filter(isDone());
  const ends = countEnds(closed);
  const open = HELD - closed.length;
  const peak = fds();
  // RLIMIT_NOFILE bounds descriptor numbers: exhausted = every number below it in use.
  const below = readdirSync(`/proc/${pid}/fd`).filter((fd) => Number(fd) < NOFILE).length;
  const during = await daemonStatus(net, daemon);
  const listener = (await net.run('xl', 'ss', ['-Hltn', `sport = :${PORT}`])).stdout.trim().split(/\s+/);

  t.ok(open > 0 && open < HELD, `the worker took what its descriptors allow: ${open} held, ${closed.length} turned away`);
  t.equal(during.totals.active, open, 'status: active = the connections the client holds');
  t.equal(listener[1], '0', 'nothing left waiting in the listen backlog (Recv-Q 0)');
  t.ok(below < NOFILE, `the worker never ran out of descriptors: ${below} of ${NOFILE} numbers in use (${peak} open in all)`);
  const closedMs = closed.map((l) => Math.round(Number(l.ms)));
  t.ok(Math.max(...closedMs) < 1000, `each one it could not take was closed at once (within ${Math.max(...closedMs)} ms), not left waiting`);
  const acceptLines = daemon.proc.filter((l) => l.msg === 'accept failed').length;
  // Admission stays below the descriptor limit (two per relay plus headroom), so the excess
  // takes the counted reset path; accept() never meets EMFILE, where libuv would close waiting
  // connections silently (a FIN the worker never hears of).
  t.equal(ends.ECONNRESET ?? 0, closed.length, 'the excess was reset, not closed cleanly');
  t.equal(during.totals.limitedBy.descriptors, closed.length, 'status: every one counted as over the descriptor limit');
  t.equal(during.totals.acceptErrors, 0, 'accept() never failed');
  const limitLines = daemon.proc.filter((l) => l.msg === 'relay closed' && l.reason === 'descriptors').length;
  t.ok(limitLines > 0 && limitLines <= 20, `logged, within the rate limit: ${limitLines} lines`);

  hold.signal('SIGTERM');
  await hold.waitExit(5000);
  t.ok(await until(10_000, async () => (await daemonStatus(net, daemon)).totals.active === 0), 'every held connection closed at the worker');
  const served = await echoOnce('echo after the held connections');
  t.equal(served.intact, true, 'served again afterwards');
  t.ok(await until(3000, () => Math.abs(fds() - baseline) <= SLACK), `worker fds back at the baseline ${baseline} ± ${SLACK}: ${fds()}`);
  t.equal(daemon.workerPid(PORT), pid, 'same worker pid');
  t.equal(workerStarts(), 1, 'no worker restarted');
  t.ok(readdirSync('/proc').includes(String(pid)), 'the worker process is alive');

  t.comment(
    `descriptors: worker nofile ${NOFILE}, baseline ${baseline} fds; ${HELD} connections → ${open} held (status active ${during.totals.active}), ` +
      `${closed.length} turned away within ${Math.max(...closedMs)} ms (client ends ${JSON.stringify(ends)}); ` +
      `acceptErrors ${during.totals.acceptErrors}, ${acceptLines} "accept failed" lines; ` +
      `fds peak ${peak}, after ${fds()}`,
  );
});

t.test(`many times ${NOFILE} refused connections, ${AT_ONCE} at a time, then a legitimate one`, async (t) => {
  const before = await daemonStatus(net, daemon);
  const rounds: [string, string, number, string][] = [
    ['denied (no rule permits 198.19.0.9)', translate('198.19.0.9'), 1000, 'denied'],
    ["not translated (the translator's own address)", ADDR.xl6, 200, 'not translated'],
    ['backend refused (198.18.0.3: nothing listens)', translate(ADDR.closed4), 200, 'refused'],
    // Each holds two descriptors for the whole connect timeout; the worker admits
    // (64 - baseline - 16 headroom) / 2 = 11 at once at this limit, so 10 fit.
    ['connect timeout (198.18.2.7 is blackholed)', translate(ADDR.blackhole4), 10, 'connect timeout'],
  ];
  const figures: string[] = [];
  for (const [name, host, count, end] of rounds) {
    const started = Date.now();
    const c = client(['sink', '--conns', String(count), '--parallel', String(Math.min(count, AT_ONCE))], host);
    const summary = await c.waitFor((l) => l.event === 'summary', { timeout: 30_000, what: `${name}: summary` });
    t.same(summary.ends, { ECONNRESET: count }, `${name}: all ${count} reset`);
    t.ok(Math.abs(fds() - baseline) <= SLACK, `${name}: worker fds at baseline ${baseline} ± ${SLACK}: ${fds()}`);
    figures.push(`${count} ${end} in ${Date.now() - started} ms → fds ${fds()}`);
  }
  const after = await daemonStatus(net, daemon);
  const delta = (key: 'denied' | 'notTranslated' | 'connectFailed'): number => after.totals[key] - before.totals[key];
  t.equal(delta('denied'), 1000, 'status: 1000 more denied');
  t.equal(delta('notTranslated'), 200, 'status: 200 more not translated');
  const ended = (reason: string): number => (after.totals.ends[reason] ?? 0) - (before.totals.ends[reason] ?? 0);
  const endings: Record<string, number> = {};
  for (const reason of Object.keys(after.totals.ends)) if (ended(reason) !== 0) endings[reason] = ended(reason);
  figures.push(`status ends ${JSON.stringify(endings)}`);
  // 50 connects at once to the refusing backend exceed the 10 the descriptors allow at once
  // whenever the worker accepts faster than the refusals come back (the native plane does):
  // each of those is refused at admission, counted as over the descriptor limit.
  const refused = ended('refused');
  const overLimit = ended('limit');
  const overDescriptors = (after.totals.limitedBy.descriptors ?? 0) - (before.totals.limitedBy.descriptors ?? 0);
  t.equal(refused + overLimit, 200, `status: the 200 ended 'refused' (${refused}) or 'limit' (${overLimit})`);
  t.equal(overDescriptors, overLimit, 'status: every limit hit was the descriptor limit');
  t.ok(refused >= 10, `at least the 10 connects the descriptors allow at once reached the backend (${refused})`);
  t.equal(delta('connectFailed'), refused + 10, 'status: the connect failures are those refused and those timed out');
  t.equal(ended('connect timeout'), 10, "status: 10 more ends 'connect timeout'");

  const served = await echoOnce('echo after the refusals');
  t.equal(served.intact, true, 'the legitimate connection after them is served');
  await sleep(200);
  t.ok(Math.abs(fds() - baseline) <= SLACK, `worker fds back at baseline ${baseline} ± ${SLACK}: ${fds()}`);
  t.equal(daemon.workerPid(PORT), pid, 'same worker pid');
  t.equal(workerStarts(), 1, 'no worker restarted');
  t.comment(`refusals at nofile ${NOFILE}: ${figures.join('; ')}; then echo served; fds baseline ${baseline}, after ${fds()}`);
});
