// What the translator must not relay: special-purpose destinations, destinations
// no rule permits, its own IPv4 address, and its own (non-prefix) IPv6 address.
// Each is reset, leaves exactly one log line, and no SYN leaves xl.
import t from 'tap';
import { ADDR, buildNetwork, isDone, translate, type Line } from '../fixtures/netns.js';
import { startDaemon } from '../fixtures/daemon.js';

const PORT = 5999;
const net = await buildNetwork(t);
const daemon = await startDaemon(t, net, { services: [{ port: PORT }], timeouts: { connect: '1s' } });

// Listeners that a wrongly relayed connection would reach: s4's real server,
// and listeners on xl's own loopback and IPv4 address.
const s4server = net.peer('s4', ['server', 'echo', '--host', ADDR.server4, '--port', String(PORT), '--timeout', '60']);
const xlLoopback = net.peer('xl', ['server', 'sink', '--host', '127.0.0.1', '--port', String(PORT), '--timeout', '60']);
const xlOwn4 = net.peer('xl', ['server', 'sink', '--host', ADDR.xl4, '--port', String(PORT), '--timeout', '60']);
for (const p of [s4server, xlLoopback, xlOwn4]) await p.waitFor((l) => l.event === 'listening', { timeout: 5000, what: 'listening' });
const accepted = (l: Line): boolean => l.event === 'accepted';

/** Connect from c6 to [dst]:PORT and report what the client, s4 and xl saw. */
async function attempt(dst: string, mode: string[]) {
  const s4Before = await net.tcpCounters('s4');
  const xlBefore = await net.tcpCounters('xl');
  const from = daemon.proc.mark();
  const c = await net
    .peer('c6', ['client', ...mode, '--host', dst, '--port', String(PORT), '--timeout', '10'])
    .waitFor(isDone(), { timeout: 10_000, what: 'client done' });
  const log = await daemon.waitClosed((l) => l.dst === dst, 5000, from);
  await new Promise((resolve) => setTimeout(resolve, 200)); // room for a second, wrong line
  const lines = daemon.proc.filter((l) => l.dst === dst || JSON.stringify(l).includes(dst), from);
  const s4After = await net.tcpCounters('s4');
  const xlAfter = await net.tcpCounters('xl');
  return {
    c,
    log,
    lines,
    s4InSegs: s4After.InSegs! - s4Before.InSegs!,
    s4PassiveOpens: s4After.PassiveOpens! - s4Before.PassiveOpens!,
    xlActiveOpens: xlAfter.ActiveOpens! - xlBefore.ActiveOpens!,
  };
}

t.test('a permitted destination is relayed (the counters below can see a relay)', async (t) => {
  const r = await attempt(translate(ADDR.server4), ['echo', '4K']);
  t.equal(r.c.intact, true, 'echoed intact');
  t.equal(r.log.end, 'fin');
  t.equal(r.lines.length, 1, 'one log line');
  t.ok(r.s4PassiveOpens >= 1, 's4 accepted a connection');
  t.ok(r.xlActiveOpens >= 1, 'xl opened a connection');
});

const refusals: [string, string, string][] = [
  ['127.0.0.1 (special-purpose, inside no permit rule)', translate('127.0.0.1'), 'denied'],
  ['198.19.0.5 (no rule permits it)', translate('198.19.0.5'), 'denied'],
  ["198.18.0.1, the translator's own IPv4 address (inside a permitted /16)", translate(ADDR.xl4), 'denied'],
  ["the translator's own non-prefix IPv6 address", ADDR.xl6, 'not translated'],
];

for (const [name, dst, end] of refusals) {
  t.test(`${name}: reset, never relayed, one log line`, async (t) => {
    const r = await attempt(dst, ['sink']);
    t.equal(r.c.end, 'ECONNRESET', 'client: reset');
    t.equal(r.c.eof, false, 'client: no EOF');
    t.equal(r.c.received, 0, 'client: no bytes');
    t.match(r.log, { end, up: 0, down: 0 }, `logged as ${end}`);
    if (end === 'denied') t.type(r.log.reason, 'string', 'a denial says why');
    t.equal(r.lines.length, 1, 'exactly one log line');
    t.equal(r.s4InSegs, 0, 'no TCP segment reached s4');
    t.equal(r.xlActiveOpens, 0, 'xl opened no connection');
  });
}

t.test('nothing reached the listeners on xl itself', async (t) => {
  t.equal(xlLoopback.filter(accepted).length, 0, '127.0.0.1 listener in xl: no connection');
  t.equal(xlOwn4.filter(accepted).length, 0, '198.18.0.1 listener in xl: no connection');
  t.equal(s4server.filter(accepted).length, 1, 's4 server: only the permitted connection');
});
