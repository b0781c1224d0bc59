// A scan: 300 destination/port pairs that no rule permits, spread over six service ports (one
// worker each). Every one is reset, not one SYN leaves the translator, the log keeps to its
// rate (20 lines per worker per 10 s, then one summary with the counts held back), and the
// counters in `faithd6 status` add up to the scan.
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { ADDR, buildNetwork, isDone, translate, type Line } from '../fixtures/netns.js';
import { daemonStatus, startDaemon } from '../fixtures/daemon.js';

/** The one service port anything is permitted on (to 198.18.0.2 only). */
const OPEN_PORT = 5901;
/** The ports scanned: services too (so each reaches a worker), but no rule permits them. */
const SCANNED_PORTS = [5902, 5903, 5904, 5905, 5906, 5907];
const BURST = 20;
const INTERVAL_S = 10;

const range = (prefix: string, from: number, to: number): string[] => Array.from({ length: to - from + 1 }, (_, i) => `${prefix}${from + i}`);
/**
 * 50 destinations a scanner would try: s4's real addresses (which would answer), the
 * translator's own, loopback and the metadata service, the rest of s4's subnet, the blackholed
 * subnet, and documentation ranges that xl has no route to.
 */
const DESTINATIONS = [
  ADDR.server4,
  ADDR.closed4,
  ADDR.xl4,
  '127.0.0.1',
  '169.254.169.254',
  ...range('198.18.0.', 10, 29),
  ...range('198.18.2.', 1, 10),
  ...range('192.0.2.', 1, 5),
  ...range('198.51.100.', 1, 5),
  ...range('203.0.113.', 1, 3),
  '198.19.0.1',
  '198.19.255.254',
];
const TARGETS = SCANNED_PORTS.flatMap((port) => DESTINATIONS.map((ipv4) => [translate(ipv4), port] as const));
const SIZE = TARGETS.length; // 300

/**
 * Connects to each [host, port] of argv[1] (JSON), `argv[2]` at a time, and prints one summary
 * line: how each connection ended (ECONNRESET, eof, an error code, or "no answer" after
 * argv[3] ms), the slowest, and the first few that did not end in a reset.
 */
const SCANNER = String.raw`
import net from 'node:net';
import { performance } from 'node:perf_hooks';
const [targetsJson, concurrencyText, timeoutText] = process.argv.slice(1);
const targets = JSON.parse(targetsJson);
const timeoutMs = Number(timeoutText);
const outcomes = {};
const odd = [];
let maxMs = 0;
let next = 0;
const t0 = performance.now();
function one([host, port]) {
  return new Promise((resolve) => {
    const started = performance.now();
    let error = null;
    let eof = false;
    let connected = false;
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => { error = 'no answer'; socket.destroy(); }, timeoutMs);
    socket.on('connect', () => { connected = true; });
    socket.on('data', () => {});
    socket.on('end', () => { eof = true; socket.end(); });
    socket.on('error', (err) => { error ??= err.code ?? err.message; });
    socket.on('close', () => {
      clearTimeout(timer);
      const ms = performance.now() - started;
      maxMs = Math.max(maxMs, ms);
      const outcome = error ?? (eof ? 'eof' : 'closed');
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      if (outcome !== 'ECONNRESET' && odd.length < 10) odd.push({ host, port, outcome, connected });
      resolve();
    });
  });
}
async function lane() {
  while (next < targets.length) await one(targets[next++]);
}
await Promise.all(Array.from({ length: Number(concurrencyText) }, lane));
process.stdout.write(JSON.stringify({ event: 'summary', targets: targets.length, outcomes, odd, maxMs: Math.round(maxMs), ms: Math.round(performance.now() - t0) }) + '\n');
`;

const net = await buildNetwork(t);
const daemon = await startDaemon(t, net, {
  services: [{ port: OPEN_PORT }, ...SCANNED_PORTS.map((port) => ({ port }))],
  rules: [{ action: 'permit', from: ['2001:db8:c6::/64'], to: [`${ADDR.server4}/32`], ports: [OPEN_PORT] }],
  timeouts: { connect: '2s' },
});
// What a relayed scan would reach: a listener on s4 on every scanned port.
const servers = [OPEN_PORT, ...SCANNED_PORTS].map((port) =>
  net.peer('s4', ['server', 'echo', '--host', ADDR.server4, '--port', String(port), '--timeout', '60']),
);
for (const s of servers) await s.waitFor((l) => l.event === 'listening', { timeout: 5000, what: 'listening' });

t.test(`a scan of ${SIZE} denied destination/port pairs`, async (t) => {
  t.equal(SIZE, 300, 'the scan has 300 pairs');
  const from = daemon.proc.mark();
  const s4Before = await net.tcpCounters('s4');
  const xlBefore = await net.tcpCounters('xl');
  const scanner = net.spawn('c6', process.execPath, ['--input-type=module', '-e', SCANNER, JSON.stringify(TARGETS), '20', '5000'], { label: 'scanner' });
  const summary = await scanner.waitFor((l) => l.event === 'summary', { timeout: 30_000, what: 'scan summary' });
  const s4After = await net.tcpCounters('s4');
  const xlAfter = await net.tcpCounters('xl');

  t.same(summary.outcomes, { ECONNRESET: SIZE }, `all ${SIZE} reset (${JSON.stringify(summary.odd)})`);
  t.ok(Number(summary.maxMs) < 1000, `each reset within 1 s (slowest ${String(summary.maxMs)} ms)`);
  t.equal(s4After.InSegs! - s4Before.InSegs!, 0, 'no TCP segment reached s4');
  t.equal(s4After.PassiveOpens! - s4Before.PassiveOpens!, 0, 's4 accepted nothing');
  t.equal(xlAfter.ActiveOpens! - xlBefore.ActiveOpens!, 0, 'xl opened no connection (no SYN left it)');
  t.equal(xlAfter.PassiveOpens! - xlBefore.PassiveOpens!, SIZE, `xl accepted the ${SIZE} scan connections`);

  const status = await daemonStatus(net, daemon);
  const deniedBy = Object.values(status.totals.deniedBy).reduce((a, b) => a + b, 0);
  t.equal(status.totals.denied, SIZE, `status: denied = ${SIZE}`);
  t.equal(deniedBy, SIZE, `status: deniedBy adds up to ${SIZE} (${JSON.stringify(status.totals.deniedBy)})`);
  t.equal(status.totals.ends.denied, SIZE, `status: ends.denied = ${SIZE}`);
  t.equal(status.totals.relayed, 0, 'status: nothing relayed');
  for (const port of status.ports.filter((p) => SCANNED_PORTS.includes(p.port))) {
    t.equal(port.totals.denied, DESTINATIONS.length, `status: port ${port.port}: ${DESTINATIONS.length} denied`);
  }

  // The log: at most BURST lines per worker now; the summaries come at the end of each
  // worker's interval (which its first refusal started).
  const isRefusal = (l: Line): boolean => l.msg === 'relay closed' && l.end === 'denied';
  const isSummary = (l: Line): boolean => l.msg === 'log lines suppressed (rate limit)';
  const lines = daemon.proc.filter(isRefusal, from);
  const perPort = (port: number): number => lines.filter((l) => l.port === port).length;
  for (const port of SCANNED_PORTS) t.ok(perPort(port) <= BURST, `port ${port}: ${perPort(port)} refusal lines (at most ${BURST})`);
  const summaries = await daemon.proc.waitForCount(isSummary, SCANNED_PORTS.length, {
    from,
    timeout: (INTERVAL_S + 5) * 1000,
    what: 'a summary line from every scanned worker',
  });
  await sleep(200); // room for a wrong extra line
  const after = daemon.proc.lines.slice(from);
  const refusals = after.filter(isRefusal);
  const allSummaries = after.filter(isSummary);
  t.equal(allSummaries.length, SCANNED_PORTS.length, 'one summary line per worker');
  const suppressed = (l: Line): number => Object.values((l.suppressed ?? {}) as Record<string, number>).reduce((a, b) => a + b, 0);
  for (const port of SCANNED_PORTS) {
    const mine = summaries.filter((l) => l.port === port);
    const held = mine.reduce((sum, l) => sum + suppressed(l), 0);
    t.equal(perPort(port) + held, DESTINATIONS.length, `port ${port}: ${perPort(port)} lines + ${held} counted in its summary = ${DESTINATIONS.length}`);
  }
  t.equal(refusals.length, lines.length, 'no refusal line after the summaries');
  t.equal(after.length, refusals.length + allSummaries.length, 'nothing else was logged');

  // The translator still relays what is permitted (and the counters above could see it).
  const ok = await net
    .peer('c6', ['client', 'echo', '4K', '--host', translate(ADDR.server4), '--port', String(OPEN_PORT), '--timeout', '10'])
    .waitFor(isDone(), { timeout: 10_000, what: 'permitted echo done' });
  t.equal(ok.intact, true, 'a permitted connection after the scan is relayed');
  t.ok((await net.tcpCounters('s4')).PassiveOpens! - s4After.PassiveOpens! >= 1, '... and s4 saw that one');

  t.comment(
    `scan: ${SIZE} denied pairs (${DESTINATIONS.length} destinations × ${SCANNED_PORTS.length} ports, 20 at a time) ` +
      `in ${String(summary.ms)} ms, all reset, slowest ${String(summary.maxMs)} ms; s4 InSegs +0, xl ActiveOpens +0`,
  );
  t.comment(
    `scan: log: ${refusals.length} refusal lines (${SCANNED_PORTS.map((p) => perPort(p)).join('/')} per worker) + ` +
      `${allSummaries.length} summaries holding back ${allSummaries.reduce((s, l) => s + suppressed(l), 0)}; ` +
      `status denied ${status.totals.denied} ${JSON.stringify(status.totals.deniedBy)}`,
  );
});
