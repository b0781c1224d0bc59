// How connections end badly: resets pass through both ways, a backend that
// refuses or never answers resets the client, and an idle connection is reset.
import t from 'tap';
import { ADDR, buildNetwork, isDone, translate } from '../fixtures/netns.js';
import { fromClientPort, portOf, startDaemon, type Daemon } from '../fixtures/daemon.js';

const PORT = 5999;
const net = await buildNetwork(t);

/** Start a server in s4 and wait until it listens; stopped at the subtest's end. */
async function server(tt: { teardown(fn: () => unknown): void }, args: string[]) {
  const proc = net.peer('s4', ['server', ...args, '--host', ADDR.server4, '--port', String(PORT), '--timeout', '30']);
  tt.teardown(() => proc.stop());
  await proc.waitFor((l) => l.event === 'listening', { timeout: 5000, what: 'listening' });
  return proc;
}

function client(ipv4: string, args: string[]) {
  return net.peer('c6', ['client', ...args, '--host', translate(ipv4), '--port', String(PORT), '--timeout', '15']);
}

t.test('connect timeout 1s', async (t) => {
  const daemon: Daemon = await startDaemon(t, net, { services: [{ port: PORT }], timeouts: { connect: '1s' } });
  t.teardown(() => daemon.stop());

  t.test('server resets mid-stream: the client sees ECONNRESET, not EOF', async (t) => {
    const srv = await server(t, ['reset-after', '1M']);
    const c = await client(ADDR.server4, ['send', '64M']).waitFor(isDone(), { timeout: 15_000 });
    const s = await srv.waitFor(isDone(0), { timeout: 5000 });
    t.equal(s.end, 'reset sent', 'server reset after 1 MiB');
    t.ok(Number(s.received) >= 1024 * 1024, 'server read at least 1 MiB first');
    t.equal(c.end, 'ECONNRESET', 'client: ECONNRESET');
    t.equal(c.eof, false, 'client: no EOF');
    t.ok(Number(c.sent) < 64 * 1024 * 1024 || c.finSent === false, 'client was still streaming');
    const log = await daemon.waitClosed(fromClientPort(portOf(c.local)), 5000);
    t.equal(log.end, 'reset by server');
  });

  t.test('client resets mid-stream: the server sees ECONNRESET, not EOF', async (t) => {
    const srv = await server(t, ['send', '64M']);
    const c = await client(ADDR.server4, ['reset-after', '1M']).waitFor(isDone(), { timeout: 15_000 });
    const s = await srv.waitFor(isDone(0), { timeout: 5000 });
    t.equal(c.end, 'reset sent', 'client reset after 1 MiB');
    t.equal(s.end, 'ECONNRESET', 'server: ECONNRESET');
    t.equal(s.eof, false, 'server: no EOF');
    const log = await daemon.waitClosed(fromClientPort(portOf(c.local)), 5000);
    t.equal(log.end, 'reset by client');
  });

  t.test('backend port closed (198.18.0.3): the client is reset within 1 s', async (t) => {
    const from = daemon.proc.mark();
    const c = await client(ADDR.closed4, ['sink']).waitFor(isDone(), { timeout: 15_000 });
    t.equal(c.end, 'ECONNRESET', 'client: ECONNRESET');
    t.equal(c.eof, false, 'client: no EOF');
    t.equal(c.received, 0, 'client: no bytes');
    t.ok(Number(c.ms) < 1000, `reset after ${String(c.ms)} ms (< 1000)`);
    // The reset may beat the client's own connect callback, so it may not know its port.
    const log = await daemon.waitClosed((l) => l.dst === translate(ADDR.closed4), 5000, from);
    t.match(log, { end: 'refused', backend: `${ADDR.closed4}:${PORT}` });
  });

  t.test('blackholed backend (198.18.2.7): the client is reset at the connect timeout', async (t) => {
    const from = daemon.proc.mark();
    const c = await client(ADDR.blackhole4, ['sink']).waitFor(isDone(), { timeout: 15_000 });
    t.equal(c.end, 'ECONNRESET', 'client: ECONNRESET');
    t.equal(c.eof, false, 'client: no EOF');
    const ms = Number(c.ms);
    t.ok(ms >= 950 && ms < 2000, `reset after ${String(c.ms)} ms (≈ 1000)`);
    const log = await daemon.waitClosed((l) => l.dst === translate(ADDR.blackhole4), 5000, from);
    t.match(log, { end: 'connect timeout', backend: `${ADDR.blackhole4}:${PORT}` });
  });
});

t.test('idle timeout 1s closes both sides with a reset', async (t) => {
  const daemon = await startDaemon(t, net, { services: [{ port: PORT }], timeouts: { connect: '1s', idle: '1s' } });
  t.teardown(() => daemon.stop());
  const srv = await server(t, ['hold']);
  const c = await client(ADDR.server4, ['hold']).waitFor(isDone(), { timeout: 10_000 });
  const s = await srv.waitFor(isDone(0), { timeout: 5000 });
  t.equal(c.end, 'ECONNRESET', 'client: ECONNRESET');
  t.equal(s.end, 'ECONNRESET', 'server: ECONNRESET');
  const ms = Number(c.ms);
  t.ok(ms >= 950 && ms < 3000, `client reset after ${String(c.ms)} ms (≈ 1000)`);
  const log = await daemon.waitClosed(fromClientPort(portOf(c.local)), 5000);
  t.match(log, { end: 'idle timeout', up: 0, down: 0 });
});
