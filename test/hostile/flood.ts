// A per-source flood towards a blackholed backend: every relayed connection sits in its
// backend connect for the whole connect timeout. One /64 gets its pendingConnectsPerSource and
// no more (the excess is reset at once and counted), and a client in another /64 is still
// served at once meanwhile.
import t from 'tap';
import { ADDR, buildNetwork, isDone, translate, type Line } from '../fixtures/netns.js';
import { daemonStatus, startDaemon } from '../fixtures/daemon.js';

const PORT = 5999;
const CAP = 20;
const EXCESS = 30;
const CONNECT_TIMEOUT_MS = 3000;
/**
 * A second client host: another /64, on the same link as c6's first address. With two
 * addresses c6 may pick either as the source, so every client here names its own (--local).
 */
const SECOND = '2001:db8:c6:1::2';
/** 198.18.2.5: xl routes it to s4, which drops it, so SYNs vanish. */
const BLACKHOLE6 = translate('198.18.2.5');

const net = await buildNetwork(t);
await net.run('c6', 'ip', ['-6', 'addr', 'add', `${SECOND}/64`, 'dev', 'eth0', 'nodad']);
await net.run('xl', 'ip', ['-6', 'route', 'add', '2001:db8:c6:1::/64', 'via', ADDR.client6, 'dev', 'to-c6']);

const daemon = await startDaemon(t, net, {
  services: [{ port: PORT }],
  rules: [{ action: 'permit', from: ['2001:db8:c6::/48'], to: ['198.18.0.0/16'] }],
  limits: { pendingConnectsPerSource: CAP },
  timeouts: { connect: `${CONNECT_TIMEOUT_MS / 1000}s` },
});
const echo = net.peer('s4', ['server', 'echo', '--host', ADDR.server4, '--port', String(PORT), '--timeout', '60']);
await echo.waitFor((l) => l.event === 'listening', { timeout: 5000, what: 'echo server listening' });

const isReset = (l: Line): boolean => isDone()(l) && l.error === 'ECONNRESET';
const round = (ms: number): number => Math.round(ms);

t.test(`${CAP}+${EXCESS} connections from one /64 to a blackholed backend`, async (t) => {
  const s4Before = await net.tcpCounters('s4');
  const started = Date.now();
  const flood = net.peer('c6', [
    'client',
    'hold',
    '--conns',
    String(CAP + EXCESS),
    '--local',
    ADDR.client6,
    '--host',
    BLACKHOLE6,
    '--port',
    String(PORT),
    '--timeout',
    '20',
  ]);

  // The excess: reset by faithd6 at once, without waiting for anything.
  const resets = await flood.waitForCount(isReset, EXCESS, { timeout: 5000, what: `${EXCESS} resets` });
  const resetAfter = Date.now() - started;
  const resetMs = resets.map((l) => round(Number(l.ms)));
  t.equal(resets.length, EXCESS, `${EXCESS} connections reset`);
  t.ok(Math.max(...resetMs) < 1000, `each reset within 1 s of its connect (slowest ${Math.max(...resetMs)} ms)`);

  // The first CAP stay open (pending their backend connect) meanwhile.
  const closedSoFar = flood.filter(isDone()).length;
  t.equal(closedSoFar, EXCESS, `the other ${CAP} are still open (${closedSoFar} of ${CAP + EXCESS} closed)`);

  // Another /64 is not held back by the flood: served while it goes on.
  const secondStarted = Date.now();
  const second = await net
    .peer('c6', ['client', 'echo', '4K', '--local', SECOND, '--host', translate(ADDR.server4), '--port', String(PORT), '--timeout', '10'])
    .waitFor(isDone(), { timeout: 10_000, what: 'second source: echo done' });
  const secondWall = Date.now() - secondStarted;
  const secondMs = round(Number(second.connectMs) + Number(second.ms));
  t.equal(second.intact, true, 'second source: 4 KiB echoed intact through the translator');
  t.ok(secondMs < 1000, `second source: connected and echoed within 1 s (${secondMs} ms; ${secondWall} ms with the client's start-up)`);
  t.ok(Date.now() - started < CONNECT_TIMEOUT_MS, 'second source was served while the flood was still pending');
  const secondLog = await daemon.waitClosed((l) => String(l.client).startsWith(`[${SECOND}]`), 5000);
  t.match(secondLog, { end: 'fin', up: 4096, down: 4096, backend: `${ADDR.server4}:${PORT}` }, 'second source: relayed, logged');

  const during = await daemonStatus(net, daemon);
  t.equal(during.totals.limitedBy['pending connects per source'], EXCESS, `status: limitedBy['pending connects per source'] = ${EXCESS}`);
  t.equal(during.totals.limited, EXCESS, `status: limited = ${EXCESS}`);
  t.equal(during.totals.ends.limit, EXCESS, `status: ends.limit = ${EXCESS}`);

  // The held ones end at the connect timeout, reset.
  const all = await flood.waitForCount(isDone(), CAP + EXCESS, { timeout: CONNECT_TIMEOUT_MS + 5000, what: 'every flood connection closed' });
  const timedOut = all.filter((l) => !resets.includes(l));
  const timedOutMs = timedOut.map((l) => round(Number(l.ms)));
  const timedOutEnds = [...new Set(timedOut.map((l) => String(l.error)))];
  t.same(timedOutEnds, ['ECONNRESET'], `the ${CAP} pending ones are reset too`);
  t.ok(
    Math.min(...timedOutMs) >= CONNECT_TIMEOUT_MS - 200 && Math.max(...timedOutMs) < CONNECT_TIMEOUT_MS + 1500,
    `... at the connect timeout (${Math.min(...timedOutMs)}–${Math.max(...timedOutMs)} ms)`,
  );
  const after = await daemonStatus(net, daemon);
  t.equal(after.totals.ends['connect timeout'], CAP, `status: ends['connect timeout'] = ${CAP}`);
  t.equal(after.totals.active, 0, 'status: nothing active any more');
  const s4After = await net.tcpCounters('s4');
  t.equal(s4After.PassiveOpens! - s4Before.PassiveOpens!, 1, "s4 accepted only the second source's connection");

  const refusalLines = daemon.proc.filter((l) => l.msg === 'relay closed' && l.end === 'limit').length;
  t.ok(refusalLines <= 20, `the log holds at most 20 limit lines (${refusalLines})`);
  t.comment(
    `flood: ${CAP + EXCESS} connections from one /64 to a blackholed backend (pendingConnectsPerSource ${CAP}): ` +
      `${CAP + EXCESS - closedSoFar} held pending, ${EXCESS} reset (all within ${resetAfter} ms of the start, ` +
      `each ${Math.min(...resetMs)}–${Math.max(...resetMs)} ms after its connect); the ${CAP} pending reset at ` +
      `${Math.min(...timedOutMs)}–${Math.max(...timedOutMs)} ms (connect timeout ${CONNECT_TIMEOUT_MS} ms)`,
  );
  t.comment(`flood: second /64 echoed 4 KiB in ${secondMs} ms (${secondWall} ms including the client's start-up)`);
  t.comment(`flood: log: ${refusalLines} limit lines of ${EXCESS} limit hits (the rest held back for the interval's summary)`);
});
