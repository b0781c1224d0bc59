// A slow reader: four clients read at 1 MiB/s for their first few seconds while the server
// behind the translator sends 64 MiB to each as fast as it can; then they read at full speed.
// Backpressure must hold faithd6 back: its worker's RSS stays within a stated bound the whole
// time (sampled every 100 ms), it reads from the servers little more than the clients have
// taken, and every byte arrives (sha256 equal).
import { readFileSync } from 'node:fs';
import t from 'tap';
import { ADDR, buildNetwork, isDone, translate, type Line } from '../fixtures/netns.js';
import { daemonStatus, startDaemon } from '../fixtures/daemon.js';

const MiB = 1024 * 1024;
const PORT = 5999;
const CONNS = 4;
const EACH = 64 * MiB;
const SLOW_RATE = MiB;
const SLOW_MS = 4000;
/**
 * The bound on the worker's RSS above its baseline. The README promises about 64 KiB per
 * direction per connection in faithd6 (one socket read plus the 16 KiB high-water mark): 4
 * connections × 2 directions × 64 KiB = 0.5 MiB. On top of that come the chunks already read
 * and not yet collected: V8's young generation (a 16 MiB semi-space by default on 64-bit)
 * fills with them at full speed before a scavenge frees them. 32 MiB holds both, with room; a
 * relay that read without backpressure would buffer up to 4 × 64 MiB.
 */
const RSS_BOUND_MIB = 32;
/**
 * What faithd6 may have read from the servers beyond what the clients took, per connection,
 * while they read slowly: the kernel's buffers between faithd6 and the client (xl's send buffer,
 * up to net.ipv4.tcp_wmem's 4 MiB, and c6's receive buffer), plus faithd6's own 64 KiB.
 */
const AHEAD_BOUND_MIB = 16;

const net = await buildNetwork(t);
const daemon = await startDaemon(t, net, { services: [{ port: PORT }], timeouts: { connect: '2s' } });
const server = net.peer('s4', ['server', 'send', String(EACH), '--host', ADDR.server4, '--port', String(PORT), '--timeout', '60']);
await server.waitFor((l) => l.event === 'listening', { timeout: 5000, what: 'server listening' });
const pid = daemon.workerPid(PORT);
if (pid === undefined) throw new Error('no "worker started" line for the port');

/** The worker's resident set, in KiB. */
function rssKiB(): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]);
}
const mib = (kib: number): string => (kib / 1024).toFixed(1);

t.test(`${CONNS} slow readers, ${(CONNS * EACH) / MiB} MiB in all`, async (t) => {
  // A relay at full speed first, so that the baseline includes what the worker loads and the
  // heap it grows for one: the bound is then about what slowness adds.
  const cold = rssKiB();
  const warm = await net
    .peer('c6', ['client', 'sink', '--host', translate(ADDR.server4), '--port', String(PORT), '--timeout', '30'])
    .waitFor(isDone(), { timeout: 30_000, what: 'warm-up transfer' });
  t.equal(warm.received, EACH, 'warm-up: 64 MiB at full speed');
  await new Promise((resolve) => setTimeout(resolve, 500));
  const baseline = rssKiB();

  const samples: number[] = [];
  const sampler = setInterval(() => samples.push(rssKiB()), 100);
  t.teardown(() => clearInterval(sampler));
  const started = Date.now();
  const readers = net.peer('c6', [
    'client',
    'sink',
    '--conns',
    String(CONNS),
    '--read-rate',
    String(SLOW_RATE),
    '--read-rate-for',
    String(SLOW_MS),
    '--host',
    translate(ADDR.server4),
    '--port',
    String(PORT),
    '--timeout',
    '60',
  ]);
  // Half way through the slow phase: how far faithd6 has read ahead of the readers (the kernel's
  // buffers fill within milliseconds). The status command takes its time on a loaded machine:
  // a snapshot it took after the readers sped up would count their fast reading as faithd6's
  // own, so it must have returned within the slow phase for the figure to mean anything.
  await new Promise((resolve) => setTimeout(resolve, SLOW_MS / 2));
  const slow = await daemonStatus(net, daemon);
  const slowAt = Date.now() - started;
  t.ok(slowAt < SLOW_MS, `the status of the slow phase was taken within it (${slowAt} ms of ${SLOW_MS})`);
  const slowPeak = Math.max(...samples);
  const summary = await readers.waitFor((l) => l.event === 'summary', { timeout: 60_000, what: 'readers done' });
  const elapsed = Date.now() - started;
  clearInterval(sampler);
  samples.push(rssKiB());
  const peak = Math.max(...samples);

  const clients = readers.filter(isDone());
  const servers = await server.waitForCount(isDone(), CONNS + 1, { timeout: 10_000, what: 'server connections done' });
  const sent = new Set(servers.slice(1).map((l: Line) => l.sentSha));
  t.same(summary.ends, { eof: CONNS }, `all ${CONNS} readers got everything and an EOF`);
  t.ok(
    clients.every((l) => l.received === EACH),
    `each reader received ${EACH / MiB} MiB`,
  );
  t.ok(
    clients.every((l) => sent.has(l.receivedSha)),
    'sha256 of every reader equals that of what a server sent',
  );
  t.ok(
    clients.every((l) => Number(l.ms) >= SLOW_MS),
    `the readers were slow for their first ${SLOW_MS} ms`,
  );

  // While they read at 1 MiB/s, faithd6 read little more than that from the servers.
  const slowDown = slow.totals.down - EACH; // minus the warm-up
  const readBySlow = (CONNS * SLOW_RATE * slowAt) / 1000;
  const ahead = (slowDown - readBySlow) / CONNS;
  t.ok(ahead < AHEAD_BOUND_MIB * MiB, `faithd6 read ${(ahead / MiB).toFixed(1)} MiB per connection ahead of the slow readers (bound ${AHEAD_BOUND_MIB} MiB)`);

  t.ok(peak - baseline < RSS_BOUND_MIB * 1024, `worker RSS stayed under baseline + ${RSS_BOUND_MIB} MiB: peak ${mib(peak)} MiB, baseline ${mib(baseline)} MiB`);
  t.comment(
    `slow reader: ${CONNS} connections × ${EACH / MiB} MiB = ${(CONNS * EACH) / MiB} MiB in ${elapsed} ms, read at ` +
      `${SLOW_RATE / MiB} MiB/s for the first ${SLOW_MS} ms; worker RSS before any relay ${mib(cold)} MiB, baseline (after one) ${mib(baseline)} MiB, peak ${mib(peak)} MiB ` +
      `(slow phase ${mib(slowPeak)} MiB), after ${mib(rssKiB())} MiB, ${samples.length} samples; bound baseline + ${RSS_BOUND_MIB} MiB`,
  );
  t.comment(
    `slow reader: after ${slowAt} ms faithd6 had read ${(slowDown / MiB).toFixed(1)} MiB from the servers, the readers about ` +
      `${(readBySlow / MiB).toFixed(1)} MiB: ${(ahead / MiB).toFixed(1)} MiB ahead per connection (kernel buffers included)`,
  );
});
