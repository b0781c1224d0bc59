// The daemon as systemd sees it: `faithd6 run` in the translator's namespace with NOTIFY_SOCKET
// naming a test receiver (test/fixtures/notify-receiver.py, in a temporary directory: unix
// socket paths are shared across network namespaces). READY=1 must mean "relays now",
// reloads are bracketed by RELOADING=1 … READY=1, a stop says STOPPING=1, and WATCHDOG=1
// keeps coming only while every worker answers.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { stringify } from 'yaml';
import { BUILT, CLI, PERMIT_CLIENT_TO_S4, type DaemonConfig } from '../fixtures/daemon.js';
import { ADDR, PREFIX, buildNetwork, isDone, translate, type Network, type Proc } from '../fixtures/netns.js';
import { has, startReceiver, valueOf, type NotifyMessage } from '../fixtures/notify-receiver.js';

const PORT = 5999;
// Not skipped when missing: these are what the daemon needs under systemd, so CI must have them.
for (const [program, pkg] of [
  ['systemd-notify', 'systemd'],
  ['python3', 'python3'],
] as const) {
  if (spawnSync(program, ['--version']).error) throw new Error(`test/netns/systemd.ts needs ${program}: apt-get install ${pkg}`);
}
const net = await buildNetwork(t);
const server = net.peer('s4', ['server', 'echo', '--host', ADDR.server4, '--port', String(PORT), '--timeout', '120']);
await server.waitFor((l) => l.event === 'listening', { timeout: 5000, what: 's4 listening' });

/**
 * `faithd6 run` in xl with extra environment (NOTIFY_SOCKET, WATCHDOG_USEC), which startDaemon
 * does not pass; `env` execs, so the pid is the daemon's own. Its runtime directory (pidfile,
 * control socket) is private to the test. Resolves at once: readiness is what is under test.
 */
async function runNotified(t: Test, env: Record<string, string>, config: DaemonConfig = { services: [{ port: PORT }] }): Promise<Proc> {
  if (!existsSync(BUILT)) throw new Error(`the daemon is not built (${BUILT} is missing): run npm run build`);
  const dir = await mkdtemp(join(tmpdir(), 'faithd6-e2e-systemd-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const configFile = join(dir, 'faithd6.yaml');
  await writeFile(
    configFile,
    stringify({ prefixes: [PREFIX], route: 'manage', rules: [PERMIT_CLIENT_TO_S4], log: { level: 'info' }, runtimeDirectory: join(dir, 'run'), ...config }),
  );
  // Whatever the test runner itself got from systemd is not passed on: only `env` counts.
  const unset = ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID'].flatMap((k) => ['-u', k]);
  const assignments = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const proc = net.spawn('xl', 'env', [...unset, ...assignments, process.execPath, CLI, 'run', '-c', configFile], {
    label: 'faithd6',
    inheritNodeOptions: true,
  });
  t.teardown(() => proc.stop(10_000));
  return proc;
}

/** The KEY=VALUE assignments must be well formed: a newline in STATUS= would break one apart. */
function wellFormed(t: Test, m: NotifyMessage): void {
  for (const [key, value] of m.assignments) {
    t.match(key, /^[A-Z_]+$/, `"${key}" is an assignment's name`);
    t.not(value, null, `${key} has a value`);
  }
}

const keyed =
  (key: string, value = '1') =>
  (m: NotifyMessage) =>
    has(m, key, value);

/** A client in c6 sends 4 KiB through the translator to s4's echo server. */
async function relayOnce(network: Network): Promise<boolean> {
  const done = await network
    .peer('c6', ['client', 'echo', '4K', '--host', translate(ADDR.server4), '--port', String(PORT), '--timeout', '10'])
    .waitFor(isDone(), { timeout: 15_000, what: 'client done' });
  return done.intact === true;
}

t.test('READY, STATUS, RELOADING … READY, STOPPING', async (t) => {
  const receiver = await startReceiver(t);
  const daemon = await runNotified(t, { NOTIFY_SOCKET: receiver.socket });

  await t.test('READY=1 arrives only once the port relays', async (t) => {
    const ready = await receiver.waitFor(keyed('READY'), 20_000, 0, 'READY=1');
    // Straight away, before anything else can settle: a connection through the translator.
    const relayed = relayOnce(net);
    t.equal(receiver.messages()[0], ready, 'READY=1 is the first notification');
    t.equal(await relayed, true, 'a connection made the moment READY=1 arrived is relayed intact');
    t.equal(valueOf(ready, 'MAINPID'), String(daemon.pid), 'MAINPID is the daemon (the supervisor)');
    wellFormed(t, ready);
    const status = ready.assignments.filter(([k]) => k === 'STATUS');
    t.equal(status.length, 1, 'one STATUS=');
    t.match(status[0]?.[1], /\S/, 'with a summary');
    t.comment(`STATUS=${status[0]?.[1] ?? ''}`);
  });

  await t.test('SIGHUP: RELOADING=1, then READY=1', async (t) => {
    const from = receiver.mark();
    daemon.signal('SIGHUP');
    const reloading = await receiver.waitFor(keyed('RELOADING'), 10_000, from, 'RELOADING=1');
    const after = receiver.messages(from).indexOf(reloading) + from;
    const ready = await receiver.waitFor(keyed('READY'), 10_000, after + 1, 'READY=1 after RELOADING=1');
    t.notOk(
      receiver
        .messages(from)
        .slice(0, after - from)
        .some(keyed('READY')),
      'no READY=1 before RELOADING=1',
    );
    const usec = Number(valueOf(reloading, 'MONOTONIC_USEC'));
    t.ok(usec > 0 && usec <= reloading.t * 1e6, 'RELOADING=1 carries MONOTONIC_USEC (CLOCK_MONOTONIC, for systemd ≥ 253)');
    wellFormed(t, reloading);
    wellFormed(t, ready);
    t.equal(ready.assignments.filter(([k]) => k === 'STATUS').length, 1, 'READY=1 comes with one STATUS=');
    t.equal(await relayOnce(net), true, 'still relaying after the reload');
  });

  await t.test('SIGTERM: STOPPING=1, then a clean exit', async (t) => {
    const from = receiver.mark();
    daemon.signal('SIGTERM');
    const stopping = await receiver.waitFor(keyed('STOPPING'), 10_000, from, 'STOPPING=1');
    wellFormed(t, stopping);
    const exit = await daemon.waitExit(15_000);
    t.same(exit, { code: 0, signal: null }, 'exit 0');
    const later = receiver.messages(receiver.messages(from).indexOf(stopping) + from + 1);
    t.notOk(later.some(keyed('READY')), 'no READY=1 after STOPPING=1');
  });
});

t.test('WATCHDOG=1 every WATCHDOG_USEC/2, and none while a worker hangs', async (t) => {
  const receiver = await startReceiver(t);
  const daemon = await runNotified(t, { NOTIFY_SOCKET: receiver.socket, WATCHDOG_USEC: '400000' });
  await receiver.waitFor(keyed('READY'), 20_000, 0, 'READY=1');
  const worker = await daemon.waitFor((l) => l.msg === 'worker started' && l.port === PORT, { timeout: 5000, what: 'worker started' });
  const workerPid = worker.worker as number;

  const pings = async (from: number, n: number): Promise<NotifyMessage[]> => {
    let seen = 0;
    await receiver.waitFor((m) => has(m, 'WATCHDOG', '1') && ++seen >= n, 10_000, from, `${n} WATCHDOG=1`);
    return receiver.messages(from).filter(keyed('WATCHDOG'));
  };
  const healthy = await pings(receiver.mark(), 8);
  const gaps = healthy.slice(1).map((m, i) => (m.t - healthy[i]!.t) * 1000);
  const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
  t.comment(`WATCHDOG=1 gaps (ms): ${gaps.map((g) => Math.round(g)).join(' ')}`);
  t.ok(mean >= 150 && mean <= 300, `about every 200 ms (mean ${Math.round(mean)} ms)`);
  // Scheduling jitter on a loaded CI machine is not a hang; a missed beat would be (~400 ms).
  t.ok(Math.max(...gaps) < 600, `no missed beat (longest gap ${Math.round(Math.max(...gaps))} ms)`);
  for (const m of healthy) t.equal(valueOf(m, 'MAINPID'), String(daemon.pid), 'attributed to the supervisor');

  // A hung worker: its event loop does not turn, it cannot answer the heartbeat.
  process.kill(workerPid, 'SIGSTOP');
  t.teardown(() => {
    try {
      process.kill(workerPid, 'SIGCONT');
    } catch {
      // gone
    }
  });
  // A ping already on its way when the worker stopped may still arrive; then silence.
  await new Promise((resolve) => setTimeout(resolve, 400));
  const from = receiver.mark();
  await new Promise((resolve) => setTimeout(resolve, 1500));
  t.equal(receiver.messages(from).filter(keyed('WATCHDOG')).length, 0, 'no WATCHDOG=1 for 1.5 s while the worker is stopped');

  process.kill(workerPid, 'SIGCONT');
  await pings(receiver.mark(), 2);
  t.pass('WATCHDOG=1 resumes once the worker answers again');

  const exitFrom = receiver.mark();
  daemon.signal('SIGTERM');
  await receiver.waitFor(keyed('STOPPING'), 10_000, exitFrom, 'STOPPING=1');
  t.same(await daemon.waitExit(15_000), { code: 0, signal: null }, 'stops cleanly');
});

t.test('without NOTIFY_SOCKET nothing is sent (and it still becomes ready)', async (t) => {
  const receiver = await startReceiver(t);
  // The receiver listens, but the daemon is not told about it.
  const daemon = await runNotified(t, { WATCHDOG_USEC: '400000' });
  await daemon.waitFor((l) => l.msg === 'ready', { timeout: 20_000, what: '"ready" log line' });
  t.equal(await relayOnce(net), true, 'relays');
  await new Promise((resolve) => setTimeout(resolve, 500));
  t.same(receiver.messages(), [], 'nothing arrived');
  daemon.signal('SIGTERM');
  t.same(await daemon.waitExit(15_000), { code: 0, signal: null });
});
