// The notifier against a real notification socket: the real systemd-notify binary sends real
// datagrams to a receiver that plays systemd's part (test/fixtures/notify-receiver.py).
import { spawnSync } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { systemdNotifier, watchdogInterval } from '../../src/system/notify.js';
import { startReceiver, valueOf, type NotifyMessage } from '../fixtures/notify-receiver.js';

const haveBinary = spawnSync('systemd-notify', ['--version']).error === undefined;
const havePython = spawnSync('python3', ['--version']).error === undefined;
const sends = haveBinary && havePython ? false : `needs ${haveBinary ? '' : 'systemd-notify (apt-get install systemd) '}${havePython ? '' : 'python3'}`.trim();

/** A logger that keeps what it is given. */
function recorder() {
  const warnings: { obj: object; msg: string }[] = [];
  return { warnings, warn: (obj: object, msg: string) => void warnings.push({ obj, msg }) };
}

/** The assignments of a message without MAINPID= (which systemd-notify adds for --pid). */
function body(m: NotifyMessage): string[] {
  return m.assignments.filter(([k]) => k !== 'MAINPID').map(([k, v]) => `${k}=${v ?? ''}`);
}

/** Sets these variables in process.env (which the notifier reads) until the test ends. */
function withEnv(t: Test, vars: Record<string, string | undefined>): void {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const apply = (values: Record<string, string | undefined>): void => {
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  apply(vars);
  t.teardown(() => apply(saved));
}

async function emptyDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'faithd6-path-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

t.test('every message arrives, in order, with exactly its assignments', { skip: sends }, async (t) => {
  const receiver = await startReceiver(t);
  const log = recorder();
  withEnv(t, { NOTIFY_SOCKET: receiver.socket, PATH: process.env.PATH });
  const notifier = systemdNotifier(process.pid, log);
  if (notifier === undefined) throw new Error('a notifier was expected with NOTIFY_SOCKET set');
  notifier.ready('serving 2 ports');
  notifier.status('line one\r\nline two\n\0');
  notifier.reloading();
  notifier.ready();
  for (let i = 0; i < 10; i++) notifier.status(`tick ${i}`);
  notifier.watchdog();
  notifier.stopping();
  await notifier.flush();
  const expected = [
    ['READY=1', 'STATUS=serving 2 ports'],
    ['STATUS=line one line two'],
    ['RELOADING=1', 'MONOTONIC_USEC=*'],
    ['READY=1'],
    ...Array.from({ length: 10 }, (_, i) => [`STATUS=tick ${i}`]),
    ['WATCHDOG=1'],
    ['STOPPING=1'],
  ];
  // systemd-notify returns once systemd (here, the receiver) took the message; its JSON line
  // reaches us a moment later.
  await receiver.waitFor(() => true, 5000, expected.length - 1, 'the last message');
  const messages = receiver.messages();
  t.same(
    messages.map((m) => body(m).map((a) => (a.startsWith('MONOTONIC_USEC=') ? 'MONOTONIC_USEC=*' : a))),
    expected,
    'the exact assignments, in the order sent',
  );
  const mainpids = messages.map((m) => valueOf(m, 'MAINPID'));
  t.same(
    mainpids.filter((p) => p !== undefined),
    Array(mainpids.filter((p) => p !== undefined).length).fill(String(process.pid)),
    'every MAINPID names the pid given',
  );
  t.ok(
    messages.filter((m) => valueOf(m, 'READY') === '1').every((m) => valueOf(m, 'MAINPID') === String(process.pid)),
    'each READY=1 carries MAINPID (the systemd-notify package, --ready --pid)',
  );
  if (process.getuid?.() === 0) {
    // With CAP_SYS_ADMIN, systemd-notify sends the credentials of --pid, as systemd attributes them.
    t.same(new Set(messages.map((m) => m.pid)), new Set([process.pid]), 'each message is attributed to the pid given');
  } else {
    t.comment('not root: systemd-notify cannot claim another pid in its credentials (hence NotifyAccess=all)');
  }
  const reload = messages[2]!;
  const usec = Number(valueOf(reload, 'MONOTONIC_USEC'));
  t.ok(Number.isSafeInteger(usec), 'MONOTONIC_USEC is an integer');
  t.ok(
    usec <= reload.t * 1e6 && usec > reload.t * 1e6 - 5e6,
    `MONOTONIC_USEC (${usec}) is CLOCK_MONOTONIC, shortly before arrival (${Math.round(reload.t * 1e6)})`,
  );
  t.same(log.warnings, [], 'nothing to warn about');
});

t.test('the pid given is the one named', { skip: sends }, async (t) => {
  const receiver = await startReceiver(t);
  // Our parent is alive and not us: a stand-in for "the supervisor, not the caller".
  withEnv(t, { NOTIFY_SOCKET: receiver.socket, PATH: process.env.PATH });
  const notifier = systemdNotifier(process.ppid)!;
  notifier.watchdog();
  await notifier.flush();
  const m = await receiver.waitFor(() => true, 5000);
  t.equal(valueOf(m, 'MAINPID'), String(process.ppid));
  t.same(body(m), ['WATCHDOG=1']);
});

t.test('without NOTIFY_SOCKET there is no notifier: nothing is sent, nothing is spawned', async (t) => {
  withEnv(t, { NOTIFY_SOCKET: undefined });
  t.equal(systemdNotifier(), undefined, 'unset');
  process.env.NOTIFY_SOCKET = '';
  t.equal(systemdNotifier(), undefined, 'empty is unset');
});

t.test('a missing systemd-notify binary: one warning, no crash, later messages dropped quietly', async (t) => {
  const log = recorder();
  const path = await emptyDir(t);
  withEnv(t, { NOTIFY_SOCKET: join(path, 'nobody-listens'), PATH: path });
  const notifier = systemdNotifier(process.pid, log)!;
  t.ok(notifier, 'NOTIFY_SOCKET is set');
  notifier.ready('up');
  notifier.watchdog();
  notifier.status('still up');
  notifier.stopping();
  await notifier.flush();
  notifier.watchdog();
  await notifier.flush();
  t.equal(log.warnings.length, 1, 'logged once');
  t.match(log.warnings[0], { obj: { code: 'ENOENT', sent: ['READY=1', 'STATUS=up'] }, msg: /systemd-notify is not on the PATH/ });
});

t.test('systemd-notify failing (no one listens): one warning, the queue goes on', { skip: haveBinary ? false : 'needs systemd-notify' }, async (t) => {
  const log = recorder();
  const dir = await emptyDir(t);
  withEnv(t, { NOTIFY_SOCKET: join(dir, 'nobody-listens'), PATH: process.env.PATH });
  const notifier = systemdNotifier(process.pid, log)!;
  notifier.ready();
  notifier.watchdog();
  notifier.stopping();
  await notifier.flush();
  t.equal(log.warnings.length, 1, 'logged once');
  t.match(log.warnings[0], { obj: { sent: ['READY=1'] }, msg: /systemd-notify failed/ });
});

t.test('a NUL or a line break in the status text becomes a space', { skip: sends }, async (t) => {
  const receiver = await startReceiver(t);
  const log = recorder();
  withEnv(t, { NOTIFY_SOCKET: receiver.socket, PATH: process.env.PATH });
  const notifier = systemdNotifier(process.pid, log)!;
  notifier.status('nul\0inside');
  notifier.ready('two\nlines');
  await notifier.flush();
  await receiver.waitFor(() => true, 5000, 1, 'both messages');
  t.same(receiver.messages().map(body), [['STATUS=nul inside'], ['READY=1', 'STATUS=two lines']]);
  t.same(log.warnings, []);
});

t.test('a failure without a logger is silent', async (t) => {
  const path = await emptyDir(t);
  const fake = join(path, 'systemd-notify');
  await writeFile(fake, '#!/bin/sh\nexit 1\n');
  await chmod(fake, 0o755);
  withEnv(t, { NOTIFY_SOCKET: join(path, 'sock'), PATH: path });
  const notifier = systemdNotifier()!;
  notifier.stopping();
  await t.resolves(notifier.flush());
});

t.test('watchdogInterval: half of WATCHDOG_USEC, in ms, for the process systemd watches', async (t) => {
  t.equal(watchdogInterval({ WATCHDOG_USEC: '400000' }, 42), 200);
  t.equal(watchdogInterval({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42' }, 42), 15_000);
  t.equal(watchdogInterval({ WATCHDOG_USEC: '1' }, 42), 1, 'never below 1 ms');
  t.equal(watchdogInterval({}, 42), undefined, 'no watchdog');
  t.equal(watchdogInterval({ WATCHDOG_USEC: '400000', WATCHDOG_PID: '43' }, 42), undefined, 'another process is watched');
  t.equal(watchdogInterval({ WATCHDOG_USEC: '400000', WATCHDOG_PID: '' }, 42), undefined, 'a WATCHDOG_PID that names no pid');
  for (const bad of ['', '0', '-5', '1e6', 'abc', '400000 ', '99999999999999999999']) {
    t.equal(watchdogInterval({ WATCHDOG_USEC: bad }, 42), undefined, `WATCHDOG_USEC=${JSON.stringify(bad)} is ignored`);
  }
  const saved = { usec: process.env.WATCHDOG_USEC, pid: process.env.WATCHDOG_PID };
  process.env.WATCHDOG_USEC = '1000000';
  process.env.WATCHDOG_PID = String(process.pid);
  t.teardown(() => {
    for (const [key, value] of [
      ['WATCHDOG_USEC', saved.usec],
      ['WATCHDOG_PID', saved.pid],
    ] as const) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  });
  t.equal(watchdogInterval(), 500, 'the defaults are process.env and process.pid');
});
