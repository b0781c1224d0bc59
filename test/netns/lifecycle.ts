// The daemon's life as an operator drives it through the CLI, in the three-host network:
// start → relay → status → reload (a rule, a broken file, ports) → restart → stop with a drain
// → status says not running; and the two ways a second instance must not do harm: start twice,
// and a stale pidfile naming some other live process.
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { stringify } from 'yaml';
import {
  PERMIT_CLIENT_TO_S4,
  portOf,
  runCli,
  fromClientPort,
  type CliResult,
  type DaemonConfig,
  type RuleConfig,
  type StatusJson,
} from '../fixtures/daemon.js';
import { ADDR, PREFIX, buildNetwork, isDone, translate, type Line, type Proc } from '../fixtures/netns.js';

const MiB = 1024 * 1024;
const P1 = 5999;
const P2 = 6000;
const P3 = 6001;
/** s4's echo servers listen on both its addresses; the rules tell them apart. */
const S2 = ADDR.server4;
const S3 = ADDR.closed4;

// One daemon's life through its CLI (start, reloads, restart, stops that wait out a drain):
// about 90 s on CI's 2 cores, too near tap's default of 120 s for a file sharing the cores.
t.setTimeout(4 * 60_000);
const net = await buildNetwork(t);
const dir = await mkdtemp(join(tmpdir(), 'faithd6-lifecycle-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));
const FILE = join(dir, 'faithd6.yaml');
const RUN = join(dir, 'run');
const LOG = join(dir, 'faithd6.log');
const PIDFILE = join(RUN, 'faithd6.pid');
const SOCKET = join(RUN, 'control.sock');

/** The config of this test: a 5 s drain, so that stopping is quick to watch. */
async function writeConfig(config: Partial<DaemonConfig>): Promise<string> {
  const text = stringify({
    prefixes: [PREFIX],
    route: 'manage',
    services: [{ port: P1 }, { port: P2 }],
    rules: [PERMIT_CLIENT_TO_S4],
    timeouts: { connect: '2s', drain: '5s' },
    log: { level: 'info' },
    runtimeDirectory: RUN,
    ...config,
  });
  await writeFile(FILE, text);
  return text;
}

/** How long each CLI verb took, for the figures at the end. */
const timings: string[] = [];

/** `faithd6 VERB -c FILE …` in xl. */
async function fd6(verb: string, ...args: string[]): Promise<CliResult> {
  const r = await runCli(net, [verb, '-c', FILE, ...args], 40_000);
  timings.push(`${verb} ${r.ms} ms (exit ${String(r.code)})`);
  return r;
}

// Whatever happens, no daemon of ours outlives the test (the namespaces' teardown kills any
// process left in them, by pid; this is the polite way first).
t.teardown(() => runCli(net, ['stop', '--runtime-dir', RUN], 20_000).catch(() => undefined));

/** An echo server in s4 on `host:port`, listening. */
async function echoServer(host: string, port: number): Promise<Proc> {
  const proc = net.peer('s4', ['server', 'echo', '--host', host, '--port', String(port), '--timeout', '150'], `s4: echo ${host}:${port}`);
  await proc.waitFor((l) => l.event === 'listening', { timeout: 5000, what: `${host}:${port} listening` });
  return proc;
}
const servers = new Map<string, Proc>();
for (const [host, port] of [
  [S2, P1],
  [S3, P1],
  [S3, P2],
  [S2, P3],
] as const)
  servers.set(`${host}:${port}`, await echoServer(host, port));
const server = (host: string, port: number): Proc => servers.get(`${host}:${port}`)!;

/** A client in c6 for `host`'s translated address; `args` as peer.js takes them. */
function client(port: number, args: string[], host: string = S2, timeoutS = 20): Proc {
  return net.peer('c6', ['client', ...args, '--host', translate(host), '--port', String(port), '--timeout', String(timeoutS)]);
}

/** One connection that echoes `size` bytes; resolves with the client's report. */
async function echoOnce(port: number, size = '64K', host: string = S2): Promise<Line> {
  return client(port, ['echo', size], host).waitFor(isDone(), { timeout: 15_000, what: `echo ${size} to ${host}:${port} done` });
}

/** Asserts a connection went through intact, at both ends. */
async function assertRelayed(t: Test, c: Line, host: string, port: number, what: string): Promise<void> {
  t.equal(c.end, 'eof', `${what}: clean EOF`);
  t.equal(c.intact, true, `${what}: echoed intact (${String(c.received)} bytes)`);
  const s = await server(host, port).waitFor((l) => isDone()(l) && l.receivedSha === c.sentSha, { timeout: 5000, what: `${what}: server report` });
  t.equal(s.received, c.sent, `${what}: the server got every byte, sha256 equal`);
}

/** Asserts a connection was reset by the translator without reaching any server. */
function assertReset(t: Test, c: Line, what: string): void {
  t.equal(c.error, 'ECONNRESET', `${what}: the client sees a reset`);
  t.equal(c.received, 0, `${what}: and no byte`);
  t.equal(c.eof, false, `${what}: and no EOF`);
}

/** The daemon's log file, as JSON lines (from line `from`). */
function logLines(from = 0): Line[] {
  let text = '';
  try {
    text = readFileSync(LOG, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l): Line => {
      try {
        return JSON.parse(l) as Line;
      } catch {
        return { raw: l };
      }
    })
    .slice(from);
}

/** Polls the log file for a line `pred` picks (from line `from`). */
async function waitLog(pred: (l: Line) => boolean, what: string, from = 0, timeout = 5000): Promise<Line> {
  const deadline = Date.now() + timeout;
  for (;;) {
    const found = logLines(from).find(pred);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`log ${LOG}: no ${what} within ${timeout} ms; last lines: ${JSON.stringify(logLines().slice(-5))}`);
    await sleep(50);
  }
}

const closedLine = (pred: (l: Line) => boolean) => (l: Line) => l.msg === 'relay closed' && pred(l);

/**
 * `status --json`, which must succeed. Mostly without tap's coverage hooks, which slow node's
 * start-up: the verb is covered by the calls that ask for coverage.
 */
async function status(t: Test, args: string[] = ['-c', FILE], coverage = false): Promise<StatusJson> {
  const r = await runCli(net, ['status', '--json', ...args], 30_000, coverage);
  t.equal(r.code, 0, `status --json: exit 0 ${r.stderr}`);
  return JSON.parse(r.stdout) as StatusJson;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function localRoute(): Promise<string> {
  return (await net.run('xl', 'ip', ['-6', 'route', 'show', 'table', 'local', PREFIX])).stdout.trim();
}

const startedRe = /^faithd6 started: pid (\d+), ports ([\d, ]+);/m;
let pid = 0;

t.test('start: returns once every port relays; pidfile, control socket, own session, workers as nobody', async (t) => {
  await writeConfig({});
  const r = await fd6('start', '--log', LOG);
  t.equal(r.code, 0, `exit 0 ${r.stderr}`);
  const m = startedRe.exec(r.stdout);
  t.ok(m, `says so: ${r.stdout.trim()}`);
  pid = Number(m?.[1]);
  t.equal(m?.[2], `${P1}, ${P2}`, 'names its ports');
  // No wait, no retry: `start` returned, so the port must relay now.
  await assertRelayed(t, await echoOnce(P1, '1M'), S2, P1, 'the first connection after start');
  t.equal(readFileSync(PIDFILE, 'utf8').trim(), String(pid), 'the pidfile names it');
  const sock = statSync(SOCKET);
  t.ok(sock.isSocket(), 'control socket in the runtime directory');
  t.equal((sock.mode & 0o777).toString(8), '600', 'the control socket is mode 0600');
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  t.equal(Number(fields[3]), pid, 'it leads a session of its own (detached from the CLI)');
  t.equal(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0], 'faithd6: supervisor', 'process title');
  const uid = (p: number): number => Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1]);
  t.equal(uid(pid), 0, 'the supervisor runs as root');
  const st = await status(t);
  const workers = st.ports.flatMap((p) => p.workers.map((w) => w.pid));
  t.equal(workers.length, 2, 'one worker per port');
  // With no `user:` in the config: the `faithd6` user if there is one, else nobody.
  const dedicated = spawnSync('id', ['-u', 'faithd6'], { encoding: 'utf8' });
  const [userName, userId] =
    dedicated.status === 0 ? ['faithd6', Number(dedicated.stdout)] : ['nobody', Number(spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).stdout)];
  for (const w of workers) t.equal(w === null ? -1 : uid(w), userId, `worker ${String(w)} runs as ${userName}`);
  t.match(await localRoute(), /^local 64:ff9b:1::\/96 dev lo/, 'the local route is in place');
});

/** The 32 MiB paced echo stream that lives across the rule reload, and a time just before it connected. */
let long: Proc;
let longAt = 0;

t.test('status shows the connections: active, relayed, bytes', async (t) => {
  // 32 MiB each way at 2 MiB/s: about 16 s, so it is still flowing through the next reload (at
  // 4 MiB/s, a 2-core AMD VM running the suite returned from that reload at 8.8 s, after the
  // last byte). It holds its FIN until told (--fin-stdin): however slow a loaded machine makes
  // the steps below, it is open for all of them.
  longAt = Date.now(); // before it connects: its own clock (fullSentMs) starts later
  long = client(P1, ['echo', '32M', '--rate', '2M', '--fin-stdin'], S2, 60);
  await long.waitFor((l) => l.event === 'connected', { timeout: 5000, what: 'long stream connected' });
  await sleep(300);
  const st = await status(t, ['-c', FILE], true);
  t.equal(st.pid, pid, 'pid');
  t.equal(st.config, FILE, 'config file');
  t.equal(st.lastReload, null, 'no reload yet');
  t.same(st.file, { valid: true }, 'the file on disk is valid');
  t.same(
    st.ports.map((p) => p.port),
    [P1, P2],
    'ports',
  );
  const p1 = st.ports[0]!;
  t.match(p1.workers, [{ restarts: 0, answering: true }], `port ${P1}: its worker answers`);
  t.match(p1.totals, { active: 1, relayed: 2, denied: 0, connectFailed: 0 }, `port ${P1}: 1 active (the stream), 2 relayed`);
  t.ok(p1.totals.up > MiB && p1.totals.down > MiB, `port ${P1}: bytes include the open stream (up ${p1.totals.up}, down ${p1.totals.down})`);
  t.match(st.ports[1]!.totals, { active: 0, relayed: 0, up: 0, down: 0 }, `port ${P2}: nothing yet`);
  t.match(st.totals, { active: 1, relayed: 2 }, 'totals');
});

/** Config B: s4's first address is denied, its second still permitted. */
const DENY_S2: RuleConfig = { action: 'deny', from: ['2001:db8:c6::/64'], to: [`${S2}/32`] };

t.test('reload with a changed rule: the next connection is denied, the established stream flows on intact', async (t) => {
  await writeConfig({ rules: [DENY_S2, PERMIT_CLIENT_TO_S4] });
  const from = logLines().length;
  const r = await fd6('reload');
  t.equal(r.code, 0, `reload: exit 0 ${r.stderr}`);
  t.match(r.stdout, /^reloaded:\n/, 'reloaded');
  t.match(r.stdout, 'rules changed (1 -> 2 rules)', 'names the change');
  const reloadedAfter = Date.now() - longAt;
  t.equal(long.filter(isDone()).length, 0, 'the long stream is still open after the reload');

  const accepted = server(S2, P1).filter((l) => l.event === 'accepted').length;
  const denied = await echoOnce(P1, '64K', S2);
  assertReset(t, denied, `a new connection to ${S2}`);
  const log = await waitLog(
    closedLine((l) => l.end === 'denied' && l.dst === translate(S2)),
    '"relay closed" … "end":"denied"',
    from,
  );
  t.match(log, { backend: `${S2}:${P1}`, up: 0, down: 0 }, 'logged as denied');
  t.match(String(log.client), `[${ADDR.client6}]:`, 'with the client');
  await assertRelayed(t, await echoOnce(P1, '64K', S3), S3, P1, `a new connection to ${S3} (still permitted)`);
  t.equal(server(S2, P1).filter((l) => l.event === 'accepted').length, accepted, `${S2} never saw the denied connection`);

  long.write('fin\n');
  const c = await long.waitFor(isDone(), { timeout: 20_000, what: 'long stream done' });
  t.equal(c.sent, 32 * MiB, 'the long stream sent 32 MiB');
  t.ok(
    Number(c.fullSentMs) > reloadedAfter,
    `it was still sending when the reload returned (reload done at ${reloadedAfter} ms, last byte sent at ${String(c.fullSentMs)} ms)`,
  );
  await assertRelayed(t, c, S2, P1, 'the stream established before the reload');
  const line = await waitLog(closedLine(fromClientPort(portOf(c.local))), "the long stream's log line");
  t.match(line, { end: 'fin', up: 32 * MiB, down: 32 * MiB }, 'its log line: fin, exact counts');

  const st = await status(t);
  t.match(st.lastReload, { ok: true, changes: ['rules changed (1 -> 2 rules)'] }, 'status: the last reload');
  t.equal(st.ports[0]!.totals.denied, 1, 'status: 1 denied');
});

t.test('a broken file: reload exits 78, the daemon keeps its config, status says the file is invalid', async (t) => {
  const good = await writeConfig({ rules: [DENY_S2, PERMIT_CLIENT_TO_S4] });
  const broken = good.replace(`port: ${P2}`, 'port: 70000');
  t.not(broken, good, 'test bug: the file did not change');
  const line = broken.split('\n').findIndex((l) => l.includes('70000')) + 1;
  await writeFile(FILE, broken);

  const r = await fd6('reload');
  t.equal(r.code, 78, 'reload: exit 78');
  t.match(r.stderr, `${FILE}:${line}:`, 'the error names file and line');
  t.match(r.stderr, 'services[1].port', 'and the key');
  t.notMatch(r.stdout, 'reloaded', 'nothing reloaded');

  assertReset(t, await echoOnce(P1, '64K', S2), `still the previous rules: ${S2} denied`);
  await assertRelayed(t, await echoOnce(P1, '64K', S3), S3, P1, `still the previous rules: ${S3} permitted`);

  const viaFile = await fd6('status');
  t.equal(viaFile.code, 78, 'status -c BROKEN: exit 78 (it cannot tell where the daemon is from a broken file)');
  t.match(viaFile.stderr, '--runtime-dir', 'and says how to reach it anyway');
  const st = await status(t, ['--runtime-dir', RUN], true);
  t.equal(st.pid, pid, 'status --runtime-dir: the same daemon');
  t.equal(st.file.valid, false, 'status: the file on disk is invalid');
  t.match(st.file.error, `${FILE}:${line}:`, 'status: with the error');
  t.match(st.lastReload, { ok: true }, 'the refused file never reached the daemon: its last reload is the good one');
  const human = await runCli(net, ['status', '--runtime-dir', RUN]);
  t.equal(human.code, 0, 'status (text): exit 0');
  t.match(human.stdout, `faithd6 is running: pid ${pid}`, 'status (text): running');
  t.match(human.stdout, 'INVALID', 'status (text) says the file is INVALID');
  t.match(human.stdout, new RegExp(`port ${P1} -> backend port ${P1}, 1 worker: 0 active, 4 relayed, 2 denied`), "status (text): the port's counters");
  t.comment(human.stdout.trimEnd());

  // SIGHUP skips the CLI's check: the daemon itself refuses, logs and records it.
  const from = logLines().length;
  process.kill(pid, 'SIGHUP');
  const failed = await waitLog((l) => typeof l.msg === 'string' && l.msg.startsWith('reload failed'), '"reload failed" log line', from);
  t.match(failed.err, 'services[1].port', 'SIGHUP with the broken file: logged with the reason');
  const after = await status(t, ['--runtime-dir', RUN]);
  t.match(after.lastReload, { ok: false, changes: [] }, 'status: the last reload failed');
  t.match(after.lastReload?.error, `${FILE}:${line}:`, 'status: and why');
  t.equal(after.pid, pid, 'the daemon runs on');
  assertReset(t, await echoOnce(P1, '64K', S2), `after SIGHUP, still the previous rules: ${S2} denied`);

  // The file repaired (the config in force, unchanged), SIGHUP applies it.
  await writeFile(FILE, good);
  const fixedFrom = logLines().length;
  process.kill(pid, 'SIGHUP');
  await waitLog((l) => l.msg === 'reloaded', '"reloaded" log line', fixedFrom);
  const fixed = await status(t);
  t.match(fixed.lastReload, { ok: true, changes: [] }, 'SIGHUP with the repaired file: applied, no changes');
  t.same(fixed.file, { valid: true }, 'status: the file is valid again');
});

t.test('reload adding a port and removing another: the new accepts, the removed refuses while its connections drain', async (t) => {
  // To S3: the rules in force still deny S2. It holds its FIN until told, so that it is open
  // through every step below however slow they are.
  const stream = client(P2, ['echo', '6M', '--rate', '2M', '--fin-stdin'], S3);
  await stream.waitFor((l) => l.event === 'connected', { timeout: 5000, what: `stream on ${P2} connected` });
  await sleep(300);
  t.equal(stream.filter(isDone()).length, 0, `the stream on ${P2} runs`);
  // A 10 s drain for the removed port's connections.
  await writeConfig({ services: [{ port: P1 }, { port: P3 }], timeouts: { connect: '2s', drain: '10s' } });
  const r = await fd6('reload');
  t.equal(r.code, 0, `reload: exit 0 ${r.stderr}`);
  t.match(r.stdout, `port ${P3} added`, 'names the added port');
  t.match(r.stdout, `port ${P2} removed`, 'names the removed port');
  t.match(r.stdout, 'rules changed (2 -> 1 rules)', 'and the rules');
  t.match(r.stdout, 'timeouts.drain: 5s -> 10s', 'and the drain timeout');
  t.comment(r.stdout.trimEnd());
  t.equal(stream.filter(isDone()).length, 0, `the stream on ${P2} is still running`);

  await assertRelayed(t, await echoOnce(P3, '64K'), S2, P3, `a connection to the new port ${P3} (no retry)`);
  const refused = await echoOnce(P2, '64K', S3);
  t.equal(refused.connected, false, `a new connection to the removed port ${P2} is not accepted`);
  t.equal(refused.error, 'ECONNREFUSED', 'it is refused');
  t.equal(stream.filter(isDone()).length, 0, `meanwhile the old stream on ${P2} still flows`);
  await assertRelayed(t, await echoOnce(P1, '64K', S2), S2, P1, `${S2} is permitted again`);

  stream.write('fin\n');
  const c = await stream.waitFor(isDone(), { timeout: 15_000, what: `stream on ${P2} done` });
  await assertRelayed(t, c, S3, P2, `the stream on the removed port ${P2} drained to its end`);
  t.equal(c.sent, 6 * MiB, 'all 6 MiB');
  const st = await status(t);
  t.same(
    st.ports.map((p) => p.port),
    [P1, P3],
    'status: the ports now',
  );
});

t.test('restart: a new pid, relaying', async (t) => {
  await writeConfig({ services: [{ port: P1 }, { port: P3 }] }); // the 5 s drain again
  const r = await fd6('restart', '--log', LOG);
  t.equal(r.code, 0, `restart: exit 0 ${r.stderr}`);
  t.match(r.stdout, `faithd6 stopped (pid ${pid})`, 'stopped the old one');
  const m = startedRe.exec(r.stdout);
  t.ok(m, 'started a new one');
  const old = pid;
  pid = Number(m?.[1]);
  t.not(pid, old, `new pid ${pid}`);
  t.notOk(alive(old), `the old one (${old}) is gone`);
  t.equal(readFileSync(PIDFILE, 'utf8').trim(), String(pid), 'the pidfile names the new one');
  await assertRelayed(t, await echoOnce(P1), S2, P1, `port ${P1} after restart`);
  await assertRelayed(t, await echoOnce(P3), S2, P3, `port ${P3} after restart`);
});

t.test('stop while a stream flows that ends within the drain: it completes intact, then the daemon exits', async (t) => {
  // It holds its FIN until told: it is open when the drain begins, whatever the machine's load.
  const stream = client(P1, ['echo', '8M', '--rate', '4M', '--fin-stdin']);
  await stream.waitFor((l) => l.event === 'connected', { timeout: 5000, what: 'stream connected' });
  await sleep(300);
  const from = logLines().length;
  const stopping = fd6('stop');
  const drainFrom = await waitLog((l) => l.msg === 'stopping', '"stopping" log line', from, 10_000);
  t.equal(drainFrom.drain, 5000, 'it drains for 5 s');
  t.equal(stream.filter(isDone()).length, 0, 'the stream is open while the daemon drains');
  const late = await echoOnce(P1);
  t.not(late.end, 'eof', 'a new connection while draining is not relayed');
  t.ok(late.error === 'ECONNREFUSED' || late.error === 'ECONNRESET', `it is refused or reset: ${String(late.error)}`);
  stream.write('fin\n');
  const c = await stream.waitFor(isDone(), { timeout: 15_000, what: 'stream done' });
  const streamDoneAt = Date.now();
  await assertRelayed(t, c, S2, P1, 'the stream open at stop');
  const r = await stopping;
  const stopDoneAt = Date.now();
  t.equal(r.code, 0, `stop: exit 0 ${r.stderr}`);
  t.match(r.stdout, `faithd6 stopped (pid ${pid})`, 'says so');
  t.ok(stopDoneAt - streamDoneAt < 2000, `stop returned once the stream had ended (${stopDoneAt - streamDoneAt} ms later)`);
  t.ok(
    stopDoneAt - Date.parse(String(drainFrom.time)) < 5000,
    `before the drain deadline (${stopDoneAt - Date.parse(String(drainFrom.time))} ms after "stopping")`,
  );
  t.notOk(alive(pid), 'the daemon is gone');
  t.equal(await localRoute(), '', 'its local route is gone');
  const line = logLines().find(closedLine(fromClientPort(portOf(c.local))));
  t.match(line, { end: 'fin', up: 8 * MiB, down: 8 * MiB }, "the stream's log line: fin, exact counts");
});

t.test('stop while a stream flows that would outlast the drain: reset at the deadline, stop returns then', async (t) => {
  const started = await fd6('start', '--log', LOG);
  t.equal(started.code, 0, `start: exit 0 ${started.stderr}`);
  pid = Number(startedRe.exec(started.stdout)?.[1]);
  // 64 MiB at 4 MiB/s: 16 s, far beyond the 5 s drain.
  const serverFrom = server(S2, P1).mark();
  const stream = client(P1, ['echo', '64M', '--rate', '4M'], S2, 40);
  await stream.waitFor((l) => l.event === 'connected', { timeout: 5000, what: 'stream connected' });
  await sleep(500);
  const from = logLines().length;
  const r = await fd6('stop');
  const stopDoneAt = Date.now();
  t.equal(r.code, 0, `stop: exit 0 ${r.stderr}`);
  const c = await stream.waitFor(isDone(), { timeout: 5000, what: 'stream done' });
  t.equal(c.error, 'ECONNRESET', 'the client sees a reset, not EOF');
  t.equal(c.eof, false, 'no EOF');
  t.ok(Number(c.received) < 64 * MiB, `it got part of the stream (${(Number(c.received) / MiB).toFixed(1)} MiB)`);
  // Times from the daemon's own log lines (ISO 8601, ms), so that a slow CLI start-up on a
  // loaded machine does not count.
  const stoppingAt = Date.parse(String((await waitLog((l) => l.msg === 'stopping', '"stopping" log line', from)).time));
  const resetAt = Date.parse(
    String(
      (
        await waitLog(
          closedLine((l) => l.end === 'stopped'),
          '"relay closed" … "end":"stopped"',
          from,
        )
      ).time,
    ),
  );
  t.ok(resetAt - stoppingAt >= 4900 && resetAt - stoppingAt < 5000 + 1000, `reset at the 5 s drain deadline (${resetAt - stoppingAt} ms after "stopping")`);
  t.ok(stopDoneAt - resetAt < 2000, `stop returned then (${stopDoneAt - resetAt} ms after the reset)`);
  const s = await server(S2, P1).waitFor(isDone(), { timeout: 5000, from: serverFrom, what: 'server report of the reset stream' });
  t.equal(s.error, 'ECONNRESET', 'the server sees a reset too, not EOF');
  const line = logLines().find(closedLine(fromClientPort(portOf(c.local))));
  t.match(line, { end: 'stopped' }, 'its log line: end "stopped"');
  t.notOk(alive(pid), 'the daemon is gone');

  const st = await fd6('status');
  t.equal(st.code, 3, 'status: exit 3, not running');
  t.match(st.stdout + st.stderr, /not running/i, 'says so');
  const again = await fd6('stop');
  t.equal(again.code, 3, 'stop again: exit 3');
  t.throws(() => statSync(PIDFILE), { code: 'ENOENT' }, 'no pidfile left');
});

t.test('start twice: the second exits 1 naming the running pid, the first is unharmed', async (t) => {
  await writeConfig({});
  const first = await fd6('start', '--log', LOG);
  t.equal(first.code, 0, `first start: exit 0 ${first.stderr}`);
  pid = Number(startedRe.exec(first.stdout)?.[1]);
  const second = await fd6('start', '--log', LOG);
  t.equal(second.code, 1, 'second start: exit 1');
  t.match(second.stderr, `already running (pid ${pid}`, 'it names the running pid');
  t.notMatch(second.stdout, 'started', 'and does not claim to have started');
  t.ok(alive(pid), 'the first is alive');
  t.equal(readFileSync(PIDFILE, 'utf8').trim(), String(pid), 'the pidfile still names the first');
  await assertRelayed(t, await echoOnce(P1), S2, P1, 'the first still relays');
  const st = await status(t);
  t.equal(st.pid, pid, 'status: the first');
  const workers = st.ports.flatMap((p) => p.workers.map((w) => w.pid));
  const left = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).map(Number).sort();
  t.same(left, [...workers].sort(), "the first daemon's children are its workers, nothing else");
  const r = await fd6('stop');
  t.equal(r.code, 0, 'stop: exit 0');
});

t.test('a stale pidfile naming a live unrelated process: stop exits 3 and leaves it alone', async (t) => {
  const sleeper = net.spawn('xl', 'sleep', ['120'], { label: 'sleep 120' });
  t.teardown(() => sleeper.stop());
  await sleep(100);
  t.ok(alive(sleeper.pid), `sleep runs as ${sleeper.pid}`);
  await writeFile(PIDFILE, `${sleeper.pid}\n`);
  const st = await fd6('status');
  t.equal(st.code, 3, 'status: exit 3');
  const r = await fd6('stop');
  t.equal(r.code, 3, 'stop: exit 3, not running');
  t.match(r.stderr, `pid ${sleeper.pid} is not faithd6`, 'it says the pidfile is stale');
  await sleep(300);
  t.ok(alive(sleeper.pid), 'the sleep is still alive');
  t.equal(sleeper.exit, null, 'and never exited');
  t.throws(() => statSync(PIDFILE), { code: 'ENOENT' }, 'the stale pidfile is removed');
});

t.test('figures', async (t) => {
  t.comment(`CLI run times: ${timings.join('; ')}`);
});
