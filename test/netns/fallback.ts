// An addon that cannot load is no reason not to start: the daemon says so once, relays on the
// JavaScript data plane, and `status` and `doctor` say why. The addon is broken on purpose by
// pointing FAITHD6_NATIVE_ADDON (which the daemon, its workers and the CLI inherit here) at a
// file that is not one; and then at one that loads but whose plane does not start.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { daemonStatus, runCli, startDaemon } from '../fixtures/daemon.js';
import { ADDR, buildNetwork, isDone, translate } from '../fixtures/netns.js';

const PORT = 5999;
const broken = join(t.testdir(), 'faithd6.node');
await writeFile(broken, 'not an ELF file\n');
process.env.FAITHD6_NATIVE_ADDON = broken;
t.teardown(() => {
  delete process.env.FAITHD6_NATIVE_ADDON;
});

const net = await buildNetwork(t);
const server = net.peer('s4', ['server', 'echo', '--host', ADDR.server4, '--port', String(PORT), '--timeout', '60']);
await server.waitFor((l) => l.event === 'listening', { timeout: 5000, what: 'echo server listening' });
const daemon = await startDaemon(t, net, { services: [{ port: PORT }], dataPlane: 'native' });

t.test('the daemon starts on the JavaScript plane, says why once, and relays', async (t) => {
  const warnings = daemon.proc.filter((l) => l.msg === 'native data plane unavailable: relaying on the JavaScript data plane');
  t.equal(warnings.length, 1, 'one warning at start');
  t.match(warnings[0]?.reason, `the native addon did not load: ${broken}`, 'naming the file and why');
  t.equal(daemon.proc.filter((l) => l.msg === 'ready')[0]?.dataPlane, 'js', 'ready, on js');
  const done = await net
    .peer('c6', ['client', 'echo', '64K', '--host', translate(ADDR.server4), '--port', String(PORT), '--timeout', '10'])
    .waitFor(isDone(), { timeout: 10_000, what: 'echo done' });
  t.equal(done.intact, true, 'a connection is relayed, 64 KiB echoed intact');
});

t.test('status and doctor say which plane relays and why', async (t) => {
  const status = await daemonStatus(net, daemon);
  t.match(status.dataPlane, { configured: 'native', dataPlane: 'js', fallback: /^the native addon did not load: / });
  t.match(status.ports[0]?.dataPlane, { dataPlane: 'js', fallback: /^the native addon did not load: / });
  const text = await runCli(net, ['status', '-c', daemon.configFile]);
  t.match(text.stdout, /\ndata plane: js, not native: the native addon did not load: .*faithd6\.node/);
  const doctor = await runCli(net, ['doctor', '-c', daemon.configFile]);
  t.not(doctor.code, 0, 'doctor fails');
  t.match(doctor.stdout, /✗ data plane/);
  t.match(doctor.stdout, 'dataPlane is native, but the native addon did not load');
});

t.test('an addon that loads but whose plane does not start: the worker relays on js and says why', async (t) => {
  process.env.FAITHD6_NATIVE_ADDON = new URL('../fixtures/plane-fails.cjs', import.meta.url).pathname;
  const second = await startDaemon(t, net, { services: [{ port: 6100, backendPort: PORT }], dataPlane: 'native' });
  const warned = second.proc.filter((l) => l.msg === 'native data plane unavailable: relaying on the JavaScript data plane');
  t.equal(warned.length, 1, 'one warning');
  t.match(warned[0]?.reason, 'the native data plane did not start: open: Too many open files');
  const done = await net
    .peer('c6', ['client', 'echo', '64K', '--host', translate(ADDR.server4), '--port', '6100', '--timeout', '10'])
    .waitFor(isDone(), { timeout: 10_000, what: 'echo done' });
  t.equal(done.intact, true, 'relayed all the same');
  const status = await daemonStatus(net, second);
  t.match(status.dataPlane, { configured: 'native', dataPlane: 'js', fallback: /^the native data plane did not start: / });
  t.match(status.ports[0]?.dataPlane, { dataPlane: 'js', fallback: /^the native data plane did not start: / });
});
