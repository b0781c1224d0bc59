// The shipped unit under a real systemd 252: a Debian tree booted with systemd-nspawn in the
// translator's namespace of the three-host network, faithd6 installed into it as the README
// says (npm pack, npm install -g, the user, the edited example config, the unit), and then
// driven through systemctl and journalctl while real clients in c6 reach the server in s4.
import { chmod, chown, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { parseDocument } from 'yaml';
import { ADDR, PREFIX, ROOT, buildNetwork, isDone, translate, type Line } from '../fixtures/netns.js';
import { bootMachine, missingTools, type Machine } from '../fixtures/machine.js';
import { requireBird, startBird } from '../fixtures/bird.js';
import { shippedConfig } from '../fixtures/anycast.js';
import type { DaemonStatus } from '../../src/control/protocol.js';

const execFileP = promisify(execFile);
const PORT = 5999;
const UNIT = 'faithd6.service';
const DST6 = translate(ADDR.server4);

// Not skipped when missing: CI installs them (.ci/run), and this is the test of the unit.
const missing = missingTools();
if (missing !== undefined) throw new Error(`test/systemd/service.ts needs a real systemd to boot: ${missing}`);
requireBird();
/** BIRD's group as the bird2 package made it on this host; the machine gets a group of that id. */
const BIRD_GID = Number(execFileSync('getent', ['group', 'bird'], { encoding: 'utf8' }).split(':')[2]);

/** The shipped example, edited as an operator would for this network: its prefix, its server. */
async function exampleConfig(): Promise<string> {
  const doc = parseDocument(await readFile(join(ROOT, 'etc', 'faithd6.yaml'), 'utf8'));
  doc.setIn(['prefixes', 0], PREFIX);
  doc.setIn(['rules', 1, 'to'], `${ADDR.server4}/32`);
  return doc.toString();
}

/** What `npm install -g` of the packed tarball wrote to stderr (its warnings). */
let installWarnings = '';

/** The README's install steps, into the machine's tree. */
async function install(root: string): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'faithd6-pack-'));
  try {
    // Without tap's coverage hook (its child_process wrapper puts NODE_OPTIONS back; env -u removes it).
    const npm = (args: string[], cwd: string) => execFileP('env', ['-u', 'NODE_OPTIONS', 'npm', ...args], { cwd, timeout: 180_000 });
    const packed = await npm(['pack', '--silent', '--pack-destination', dir], ROOT);
    const tgz = join(dir, packed.stdout.trim().split('\n').pop()!);
    // prebuildify (prepack) builds in native/build and takes the binary away; the tree's own
    // build must be back, or every later test here would load the prebuilt copy instead.
    if (!existsSync(join(ROOT, 'native/build/Release/faithd6.node'))) throw new Error('npm pack left native/build/Release/faithd6.node missing');
    installWarnings = (await npm(['install', '-g', '--prefix', join(root, 'usr/local'), '--no-audit', '--no-fund', tgz], dir)).stderr;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  // The same Debian release: the host's node runs there (its libraries are in the tree).
  await copyFile(process.execPath, join(root, 'usr/bin/node'));
  await execFileP('chroot', [root, 'useradd', '--system', '--no-create-home', '--shell', '/usr/sbin/nologin', 'faithd6']);
  // The README's step for announcing: faithd6 may use BIRD's socket as a member of its group.
  await execFileP('chroot', [root, 'groupadd', '--system', '--gid', String(BIRD_GID), 'bird']);
  await execFileP('chroot', [root, 'usermod', '-aG', 'bird', 'faithd6']);
  await writeFile(join(root, 'etc/faithd6.yaml'), await exampleConfig(), { mode: 0o644 });
  await copyFile(join(ROOT, 'etc/faithd6.schema.json'), join(root, 'etc/faithd6.schema.json'));
  await copyFile(join(ROOT, 'systemd', UNIT), join(root, 'etc/systemd/system', UNIT));
}

// Above tap's 120 s per file: on a fresh machine the Debian tree is built first (about 20 s,
// more on a slow mirror) and npm fetches faithd6's dependencies from the registry.
t.setTimeout(10 * 60_000);
const net = await buildNetwork(t);
const echo = net.peer('s4', ['server', 'echo', '--host', ADDR.server4, '--port', String(PORT), '--timeout', '300']);
await echo.waitFor((l) => l.event === 'listening', { timeout: 5000, what: 's4 listening' });
// BIRD runs beside the machine, in the same namespace, on the shipped translator.conf (its BGP
// neighbour is absent here: only the static protocol matters); its socket's directory is the
// machine's /run/bird, owned as Debian's bird2 leaves it (group bird, 0750 and 0660).
const bird = await startBird(t, net, 'xl', await shippedConfig('translator.conf', [['2001:db8:5999::/96', PREFIX]]));
await chown(dirname(bird.socket), 0, BIRD_GID);
await chmod(dirname(bird.socket), 0o750);
await chown(bird.socket, 0, BIRD_GID);
await chmod(bird.socket, 0o660);
const machine: Machine = await bootMachine(t, net.ns.xl, install, { binds: [`${dirname(bird.socket)}:/run/bird`] });

/** A client in c6 through the translator: echo N bytes; resolves with its done line. */
async function client(args: string[], timeout = 20_000): Promise<Line> {
  return net
    .peer('c6', ['client', ...args, '--host', DST6, '--port', String(PORT), '--timeout', String(timeout / 1000)])
    .waitFor(isDone(), { timeout, what: 'client done' });
}

/** Signals one process of the machine. Never pid 0 or less: kill(1) would take the whole process group, this test's included. */
async function signal(sig: string, pid: unknown): Promise<number> {
  if (typeof pid !== 'number' && typeof pid !== 'string') throw new Error(`no pid to signal: ${String(pid)}`);
  if (!/^[1-9]\d*$/.test(String(pid))) throw new Error(`not a pid to signal: ${String(pid)}`);
  return (await machine.exec(['kill', `-${sig}`, String(pid)])).code;
}

async function status(): Promise<DaemonStatus> {
  const r = await machine.exec(['faithd6', 'status', '--json', '-c', '/etc/faithd6.yaml']);
  if (r.code !== 0) throw new Error(`faithd6 status exited ${r.code}: ${r.stderr}${r.stdout}`);
  return JSON.parse(r.stdout) as DaemonStatus;
}

async function localRoutes(): Promise<string> {
  return (await execFileP('ip', ['-n', net.ns.xl, '-6', 'route', 'show', 'table', 'local', 'exact', PREFIX])).stdout.trim();
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The daemon's JSON lines in the journal (systemd's own lines are not JSON). */
async function logLines(): Promise<Record<string, unknown>[]> {
  return (await machine.journal(UNIT)).flatMap((l) => {
    try {
      const v: unknown = JSON.parse(l);
      return isRecord(v) ? [v] : [];
    } catch {
      return [];
    }
  });
}

async function until(what: string, timeout: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeout} ms`);
    await sleep(100);
  }
}

async function writeConfig(text: string): Promise<void> {
  await writeFile(join(machine.root, 'etc/faithd6.yaml'), text, { mode: 0o644 });
}

/** Waits until the unit is neither starting nor stopping, and says where it settled. */
async function settled(): Promise<string> {
  let state = '';
  await until(
    'the unit to settle',
    20_000,
    async () => !['activating', 'deactivating', 'reloading'].includes((state = await machine.property(UNIT, 'ActiveState'))),
  );
  return state;
}

async function dropIn(t: Test, name: string, text: string): Promise<void> {
  const dir = join(machine.root, 'etc/systemd/system', `${UNIT}.d`);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, name), text);
  t.teardown(async () => {
    await rm(join(dir, name), { force: true });
    await machine.systemctl('daemon-reload');
  });
  await machine.systemctl('daemon-reload');
}

t.test('installed as the README says, `systemctl enable --now` returns once it relays', async (t) => {
  t.equal((await machine.systemctl('daemon-reload')).code, 0);
  const started = await machine.systemctl('enable', '--now', UNIT);
  t.equal(started.code, 0, `systemctl enable --now: ${started.stderr.trim()}`);
  // No retry: Type=notify means the listener accepts once systemctl has returned.
  const c = await client(['echo', '1M']);
  t.equal(c.intact, true, 'the first connection after start is relayed, 1 MiB echoed intact');
  t.equal(await machine.property(UNIT, 'ActiveState'), 'active');
  t.match(await machine.property(UNIT, 'StatusText'), /ports 5999/, 'STATUS= came through the systemd-notify package');
  t.match(await localRoutes(), /^local 64:ff9b:1::\/96 dev lo/, 'ExecStartPre=+ added the local route');
  const s = await status();
  t.equal(String(s.pid), await machine.property(UNIT, 'MainPID'), 'systemd tracks the supervisor (MAINPID from READY=1)');
  const users = (await machine.exec(['ps', '-o', 'user=', '-p', [s.pid, ...s.ports[0]!.workers.map((w) => w.pid)].join(',')])).stdout
    .split('\n')
    .filter(Boolean);
  t.same(new Set(users), new Set(['faithd6']), 'supervisor and workers run as faithd6');
  // The package carries the addon prebuilt: installed where there is no compiler, it relays natively.
  t.not((await machine.exec(['sh', '-c', 'command -v cc || command -v gcc || command -v make'])).code, 0, 'the machine has no compiler');
  t.same(s.dataPlane, { configured: 'native', dataPlane: 'native', fallback: null }, 'the native data plane, from the prebuild in the package');
  t.same(s.ports[0]!.dataPlane, { dataPlane: 'native', fallback: null }, 'its worker relays on it');
  // npm 11 lists a tarball's preinstall, install, postinstall and prepare scripts as install
  // scripts (and may not run them): the package has none, so the install warned of none.
  const installed = JSON.parse(await readFile(join(machine.root, 'usr/local/lib/node_modules/faithd6/package.json'), 'utf8')) as {
    scripts?: Record<string, string>;
  };
  const hooks = ['preinstall', 'install', 'postinstall', 'prepare'].filter((s) => installed.scripts?.[s] !== undefined);
  t.same(hooks, [], 'the package has no install-time script');
  t.notMatch(installWarnings, /install.scripts/i, `npm install -g warned of no install script: ${installWarnings.trim()}`);
  const schema = await machine.exec(['faithd6', 'schema']);
  const copied = await machine.exec(['cat', '/etc/faithd6.schema.json']);
  t.same(JSON.parse(schema.stdout), JSON.parse(copied.stdout), 'the installed faithd6 prints the schema the README copies beside the config');
});

t.test('log lines reach the journal as JSON, one per connection', async (t) => {
  const before = (await logLines()).filter((l) => l.msg === 'relay closed').length;
  for (let i = 0; i < 3; i++) t.equal((await client(['echo', '64K'])).intact, true);
  await until('three more relay closed lines', 10_000, async () => (await logLines()).filter((l) => l.msg === 'relay closed').length >= before + 3);
  const closed = (await logLines()).filter((l) => l.msg === 'relay closed');
  t.equal(closed.length, before + 3, 'exactly one line per connection');
  t.match(closed[closed.length - 1], { end: 'fin', backend: `${ADDR.server4}:${PORT}`, up: 65536, down: 65536 });
});

t.test('reload applies a changed rule to new connections while a stream keeps flowing', async (t) => {
  const example = await exampleConfig();
  // 8 MiB at 4 MB/s: about two seconds, through the reload.
  const stream = client(['echo', '8M', '--rate', '4000000'], 30_000);
  await sleep(500);
  const doc = parseDocument(example);
  doc.setIn(['rules', 0, 'from'], '2001:db8:c6::/64');
  doc.setIn(['rules', 0, 'to'], `${ADDR.server4}/32`);
  await writeConfig(doc.toString());
  const reloaded = await machine.systemctl('reload', UNIT);
  t.equal(reloaded.code, 0, `systemctl reload: ${reloaded.stderr.trim()}`);
  const denied = await client(['echo', '1K']);
  t.equal(denied.end, 'ECONNRESET', 'a new connection from c6 is now denied');
  const s = await stream;
  t.equal(s.intact, true, 'the stream that was open during the reload arrived whole');
  t.equal(await machine.property(UNIT, 'ActiveState'), 'active');
  await writeConfig(example);
  t.equal((await machine.systemctl('reload', UNIT)).code, 0, 'and back');
  t.equal((await client(['echo', '1K'])).intact, true, 'permitted again');
});

t.test('an invalid file fails the reload, and the old config keeps serving', async (t) => {
  const example = await exampleConfig();
  await writeConfig(example.replace(/^route: manage$/m, 'route: sometimes'));
  const reloaded = await machine.systemctl('reload', UNIT);
  t.not(reloaded.code, 0, 'systemctl reload fails');
  t.equal(await machine.property(UNIT, 'ActiveState'), 'active', 'the service keeps running');
  t.equal((await client(['echo', '64K'])).intact, true, 'and relaying as before');
  const journal = (await machine.journal(UNIT)).join('\n');
  t.match(journal, /faithd6\.yaml:\d+:\d+: route/, 'the journal names the file, line and key');
  await writeConfig(example);
});

t.test('a SIGKILLed worker is replaced while the unit stays active', async (t) => {
  const before = await status();
  const worker = before.ports[0]!.workers[0]!.pid!;
  t.equal(await signal('KILL', worker), 0);
  await until('a new worker', 10_000, async () => {
    const w = (await status()).ports[0]!.workers[0]!;
    return w.pid !== null && w.pid !== worker && w.answering;
  });
  t.equal((await client(['echo', '64K'])).intact, true, 'the new worker relays');
  t.equal(await machine.property(UNIT, 'ActiveState'), 'active');
  t.equal(await machine.property(UNIT, 'NRestarts'), '0', 'the unit itself was not restarted');
  t.equal((await status()).pid, before.pid, 'same supervisor');
});

t.test('the daemon did everything it needed inside the sandbox', async (t) => {
  const problems = (await logLines()).filter((l) => Number(l.level) >= 50);
  t.same(problems, [], 'no error or fatal line in the journal');
  const security = await machine.exec(['systemd-analyze', 'security', UNIT]);
  const exposure = /Overall exposure level for \S+: ([\d.]+)/.exec(security.stdout);
  t.ok(
    exposure !== null && Number(exposure[1]) <= 2.0,
    `systemd-analyze security on the running system: ${exposure?.[1] ?? security.stdout.slice(-300)} (≤ 2.0)`,
  );
});

t.test('systemctl stop drains open connections, then removes the route', async (t) => {
  const stream = client(['echo', '4M', '--rate', '4000000'], 30_000);
  await sleep(300);
  const started = Date.now();
  const stopped = await machine.systemctl('stop', UNIT);
  t.equal(stopped.code, 0, 'systemctl stop');
  const s = await stream;
  t.equal(s.intact, true, 'the open stream finished whole during the drain');
  t.ok(Date.now() - started >= 400, `stop waited for it (${Date.now() - started} ms)`);
  t.equal(await machine.property(UNIT, 'ActiveState'), 'inactive');
  t.equal(await localRoutes(), '', 'ExecStopPost=+ removed the local route');
  t.ok(
    (await machine.journal(UNIT)).some((l) => l.endsWith('has no announce.birdSocket: nothing to withdraw')),
    'ExecStopPost=-+ faithd6 withdraw ran first, and found nothing to withdraw in this config',
  );
  t.ok(
    (await logLines()).some((l) => l.msg === 'stopped'),
    'the supervisor said it stopped',
  );
});

t.test('the watchdog kills a SIGSTOPped supervisor and systemd starts it again', async (t) => {
  await dropIn(t, 'watchdog.conf', '[Service]\nWatchdogSec=2s\n');
  t.equal((await machine.systemctl('start', UNIT)).code, 0);
  const main = await machine.property(UNIT, 'MainPID');
  // Three times WatchdogSec: alive only because WATCHDOG=1 (the binary's path) keeps coming.
  await sleep(6000);
  t.equal(await machine.property(UNIT, 'MainPID'), main, 'WATCHDOG=1 kept it alive for three watchdog periods');
  t.equal(await signal('STOP', main), 0);
  await until('a new supervisor', 30_000, async () => {
    const pid = await machine.property(UNIT, 'MainPID');
    return pid !== main && pid !== '0' && (await machine.property(UNIT, 'ActiveState')) === 'active';
  });
  t.equal(await machine.property(UNIT, 'NRestarts'), '1', 'restarted once');
  t.match((await machine.journal(UNIT)).join('\n'), /[Ww]atchdog timeout/, 'systemd says why');
  t.equal((await client(['echo', '64K'])).intact, true, 'the new instance relays');
  t.equal((await machine.systemctl('stop', UNIT)).code, 0);
});

t.test('start fails without a crash loop', async (t) => {
  const example = await exampleConfig();
  const file = join(machine.root, 'etc/faithd6.yaml');
  t.teardown(() => writeFile(file, example));

  /** Start fails: the daemon exits `status`, the unit stays failed, nothing is restarted. */
  async function failsOnce(t: Test, status: string): Promise<string> {
    await machine.systemctl('reset-failed', UNIT);
    const mark = (await machine.journal(UNIT)).length;
    const started = await machine.systemctl('start', UNIT);
    t.not(started.code, 0, 'systemctl start fails');
    t.equal(await settled(), 'failed', 'the unit failed');
    await sleep(1000);
    t.equal(await machine.property(UNIT, 'ActiveState'), 'failed', 'and stays failed: no restart was scheduled');
    t.equal(await machine.property(UNIT, 'NRestarts'), '0', 'no restart');
    t.equal(await machine.property(UNIT, 'ExecMainStatus'), status, `the daemon exited ${status}`);
    t.equal(await localRoutes(), '', 'no route left behind');
    return (await machine.journal(UNIT)).slice(mark).join('\n');
  }

  t.test('a bad config file: 78', async (t) => {
    await writeFile(file, example.replace(/^route: manage$/m, 'route: sometimes'));
    t.teardown(() => writeFile(file, example));
    const journal = await failsOnce(t, '78');
    t.match(journal, /faithd6\.yaml:\d+:\d+: route/, 'the journal names the file, line and key');
  });

  t.test('route up without its privileges: 78, no route', async (t) => {
    // The shipped line without its "+": as the faithd6 user, route up has no CAP_NET_ADMIN.
    await dropIn(t, 'unprivileged.conf', '[Service]\nExecStartPre=\nExecStartPre=-/usr/local/bin/faithd6 route up -c /etc/faithd6.yaml\n');
    const journal = await failsOnce(t, '78');
    t.match(journal, /needs its "\+"/, 'route up says what it lacked');
    t.match(journal, /no local route for 64:ff9b:1::\/96/, 'the daemon says why it will not start');
  });

  t.test('a port below 1024 without CAP_NET_BIND_SERVICE: 77', async (t) => {
    await dropIn(t, 'nocaps.conf', '[Service]\nAmbientCapabilities=\n');
    const doc = parseDocument(example);
    doc.setIn(['services', 0, 'port'], 554);
    doc.setIn(['rules', 1, 'ports', 0], 554);
    await writeFile(file, doc.toString());
    t.teardown(() => writeFile(file, example));
    const journal = await failsOnce(t, '77');
    t.match(journal, /port 554: permission denied/);
  });
});

t.test('announced through BIRD under the unit: up once started, withdrawn by stop, and by ExecStopPost after a crash', async (t) => {
  const example = await exampleConfig();
  const file = join(machine.root, 'etc/faithd6.yaml');
  t.teardown(() => writeFile(file, example));
  await writeConfig(`${example}\nannounce:\n  birdSocket: /run/bird/bird.ctl\n  protocol: faithd6\n  withdrawGrace: 500ms\n`);
  await machine.systemctl('reset-failed', UNIT);
  t.equal((await machine.systemctl('start', UNIT)).code, 0, 'systemctl start');
  t.equal(await bird.state('faithd6'), 'up', 'announced by the time systemctl start returned (READY=1)');
  t.match(
    (await status()).announce,
    { announced: true, reason: 'every listener accepts', error: null },
    'the unprivileged daemon reaches BIRD inside its sandbox',
  );
  const doctor = await machine.exec(['faithd6', 'doctor', '-c', '/etc/faithd6.yaml']);
  t.match(doctor.stdout, `✓ BIRD protocol faithd6 on /run/bird/bird.ctl: a static protocol, up, announcing ${PREFIX}`, 'faithd6 doctor in the machine');

  let mark = (await machine.journal(UNIT)).length;
  t.equal((await machine.systemctl('stop', UNIT)).code, 0, 'systemctl stop');
  t.equal(await bird.state('faithd6'), 'down', 'withdrawn by the stop');
  t.ok(
    (await machine.journal(UNIT)).slice(mark).some((l) => l.endsWith('BIRD protocol faithd6 was already disabled')),
    "ExecStopPost's withdraw found it done",
  );

  // A crash of the whole unit at once: nothing of faithd6 lives to withdraw, ExecStopPost does.
  t.equal((await machine.systemctl('start', UNIT)).code, 0);
  t.equal(await bird.state('faithd6'), 'up');
  mark = (await machine.journal(UNIT)).length;
  t.equal((await machine.systemctl('kill', '--signal=SIGKILL', UNIT)).code, 0, 'systemctl kill --signal=SIGKILL: every process of the unit');
  await until('the withdraw of ExecStopPost', 20_000, async () =>
    (await machine.journal(UNIT)).slice(mark).some((l) => l.endsWith('withdrawn: BIRD protocol faithd6 disabled')),
  );
  t.pass('ExecStopPost withdrew after the crash');
  // Restart=on-failure brings it back, announcing again.
  await until(
    'the restarted unit to announce',
    30_000,
    async () => (await machine.property(UNIT, 'ActiveState')) === 'active' && (await bird.state('faithd6')) === 'up',
  );
  t.pass('restarted by systemd, it announces again');
  t.equal((await machine.systemctl('stop', UNIT)).code, 0);
  t.equal(await bird.state('faithd6'), 'down');
});
