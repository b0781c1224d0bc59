// 200 connections that never send a byte, with `idle: 2s`: every one is reset at about the
// idle timeout, at both ends, and counted as an idle timeout.
import t from 'tap';
import { ADDR, buildNetwork, isDone, translate } from '../fixtures/netns.js';
import { daemonStatus, startDaemon } from '../fixtures/daemon.js';

const PORT = 5999;
const CONNS = 200;
const IDLE_MS = 2000;

const net = await buildNetwork(t);
const daemon = await startDaemon(t, net, {
  services: [{ port: PORT }],
  timeouts: { connect: '2s', idle: `${IDLE_MS / 1000}s` },
  // 200 at once from one source: above the default rate bucket's 200 and pending 64 per source.
  limits: { newConnectionsPerSecond: 1000, pendingConnectsPerSource: 512 },
});
const server = net.peer('s4', ['server', 'hold', '--host', ADDR.server4, '--port', String(PORT), '--timeout', '30']);
await server.waitFor((l) => l.event === 'listening', { timeout: 5000, what: 'server listening' });

t.test(`${CONNS} connections that never send, idle timeout ${IDLE_MS} ms`, async (t) => {
  const started = Date.now();
  const hold = net.peer('c6', ['client', 'hold', '--conns', String(CONNS), '--host', translate(ADDR.server4), '--port', String(PORT), '--timeout', '20']);
  await hold.waitForCount((l) => l.event === 'connected', CONNS, { timeout: 10_000, what: `${CONNS} connected` });
  const upAt = Date.now() - started;
  const during = await daemonStatus(net, daemon);
  t.equal(during.totals.active, CONNS, `all ${CONNS} relayed and open`);

  const summary = await hold.waitFor((l) => l.event === 'summary', { timeout: IDLE_MS + 8000, what: 'every connection closed' });
  const closedAt = Date.now() - started;
  const clientMs = hold.filter(isDone()).map((l) => Number(l.ms));
  t.same(summary.ends, { ECONNRESET: CONNS }, `the client saw all ${CONNS} reset`);
  t.ok(Math.max(...clientMs) < IDLE_MS + 1500, `all at about the timeout (the client's last after ${Math.round(Math.max(...clientMs))} ms)`);
  const servers = await server.waitForCount(isDone(), CONNS, { timeout: 5000, what: 'server side closed' });
  const serverEnds = new Set(servers.map((l) => l.end));
  t.same([...serverEnds], ['ECONNRESET'], 'the server saw them reset too');

  const after = await daemonStatus(net, daemon);
  t.equal(after.totals.ends['idle timeout'], CONNS, `status: ends['idle timeout'] = ${CONNS}`);
  t.equal(after.totals.active, 0, 'status: none active');
  // The daemon's own clock (accept to close) is the exact one; the client's starts when its
  // busy event loop gets to each 'connect'.
  const logged = daemon.closed().filter((l) => l.end === 'idle timeout');
  const ms = logged.map((l) => Number(l.ms));
  const first = Math.min(...ms);
  const last = Math.max(...ms);
  t.equal(logged.length, CONNS, `${CONNS} "relay closed" lines with end "idle timeout"`);
  // libuv starts a timer from the loop's cached clock, whole milliseconds read at the top of the
  // iteration, so a timer can fire up to 1 ms early by a precise clock (seen once: 1999 ms on Node 24).
  t.ok(first >= IDLE_MS - 1, `none before the timeout (the first after ${first} ms)`);
  t.ok(last < IDLE_MS + 1500, `all at about the timeout (the last after ${last} ms)`);
  t.comment(
    `idle: ${CONNS} silent connections up after ${upAt} ms; reset ${first}–${last} ms after their accept (idle ${IDLE_MS} ms); ` +
      `all closed ${closedAt} ms after the start; status ends ${JSON.stringify(after.totals.ends)}`,
  );
});
