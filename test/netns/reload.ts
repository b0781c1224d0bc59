// Reload under load: `faithd6 reload` five times, alternating two valid configs (rules,
// timeouts, log level differ; the ports do not), while 50 long paced streams and a steady
// stream of new short connections run. Nothing may be lost: no connect fails, no stream is cut,
// every byte arrives (sha256 at both ends), no worker is restarted.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { stringify } from 'yaml';
import { PERMIT_CLIENT_TO_S4, runCli, startDaemon, type DaemonConfig } from '../fixtures/daemon.js';
import { ADDR, PREFIX, buildNetwork, isDone, translate, type Line, type Proc } from '../fixtures/netns.js';

const MiB = 1024 * 1024;
const STREAM_PORT = 5999;
const SHORT_PORT = 6000;
const DST6 = translate(ADDR.server4);
/**
 * 5 clients of 10 streams each, 4 … 8 MiB a stream, echoed, each paced over about 10 s; each
 * then holds its FIN until the reloads are done (--fin-stdin), so that on a slow machine too
 * every reload happens while all 50 are open.
 */
const STREAM_SIZES = [4, 5, 6, 7, 8];
const STREAMS_PER_CLIENT = 10;
const STREAM_SECONDS = 10;
/** New short connections, one every 50 ms (20/s), until the reloads are done (--stop-stdin). */
const SHORT_INTERVAL = 50;
const SHORTS_MAX = 1200;
const RELOADS = 5;
/**
 * A reload starts about this often (ms): five take about 5 s, while the streams send (on a quiet
 * machine; on a loaded one node's start-up alone can take a second, and a reload longer).
 */
const RELOAD_EVERY = 1000;

const net = await buildNetwork(t);
const dir = await mkdtemp(join(tmpdir(), 'faithd6-reload-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));
const RUN = join(dir, 'run');

const common: DaemonConfig = {
  prefixes: [PREFIX],
  route: 'manage',
  services: [{ port: STREAM_PORT }, { port: SHORT_PORT }],
  runtimeDirectory: RUN,
};
/** The two configs: same ports, different rules, timeouts and log level. */
const CONFIGS: readonly DaemonConfig[] = [
  { ...common, rules: [PERMIT_CLIENT_TO_S4], timeouts: { connect: '2s', idle: '10m', drain: '10s' }, log: { level: 'info' } },
  {
    ...common,
    rules: [{ action: 'deny', from: ['2001:db8:dead::/48'], to: ['198.18.0.0/16'] }, PERMIT_CLIENT_TO_S4],
    timeouts: { connect: '3s', idle: '20m', halfClosed: '2m', drain: '10s' },
    log: { level: 'debug' },
  },
];

async function echoServer(port: number): Promise<Proc> {
  const proc = net.peer('s4', ['server', 'echo', '--host', ADDR.server4, '--port', String(port), '--timeout', '120'], `s4: echo :${port}`);
  await proc.waitFor((l) => l.event === 'listening', { timeout: 5000, what: `:${port} listening` });
  return proc;
}
const streamServer = await echoServer(STREAM_PORT);
const shortServer = await echoServer(SHORT_PORT);
const daemon = await startDaemon(t, net, CONFIGS[0]!);

t.test(`${RELOADS} reloads under load: 50 long streams and 20 new connections a second`, async (t) => {
  const before = JSON.parse((await runCli(net, ['status', '--json', '-c', daemon.configFile], 30_000, false)).stdout) as {
    ports: { port: number; workers: { pid: number }[] }[];
  };
  const workersBefore = before.ports.map((p) => p.workers.map((w) => w.pid));

  // Before any connection exists: a stream's own clock (fullSentMs) starts later than this.
  const loadAt = Date.now();
  const shorts = net.peer(
    'c6',
    [
      'client',
      'echo',
      '16K',
      '--conns',
      String(SHORTS_MAX),
      '--interval',
      String(SHORT_INTERVAL),
      '--stop-stdin',
      '--host',
      DST6,
      '--port',
      String(SHORT_PORT),
      '--timeout',
      '90',
    ],
    'short connections',
  );
  const streams = STREAM_SIZES.map((mib) =>
    net.peer(
      'c6',
      [
        'client',
        'echo',
        `${mib}M`,
        '--conns',
        String(STREAMS_PER_CLIENT),
        '--rate',
        String(Math.round((mib * MiB) / STREAM_SECONDS)),
        '--fin-stdin',
        '--host',
        DST6,
        '--port',
        String(STREAM_PORT),
        '--timeout',
        '90',
      ],
      `streams of ${mib} MiB`,
    ),
  );
  const connected = (l: Line): boolean => l.event === 'connected';
  for (const p of streams) await p.waitForCount(connected, STREAMS_PER_CLIENT, { timeout: 10_000, what: 'every stream connected' });
  await shorts.waitFor(connected, { timeout: 5000, what: 'a first short connection' });
  await sleep(300);

  const reloads: { ms: number; doneAt: number; shortsDuring: number; changes: string }[] = [];
  for (let i = 0; i < RELOADS; i++) {
    const config = CONFIGS[(i + 1) % 2]!;
    await writeFile(daemon.configFile, stringify(config));
    const shortsBefore = shorts.filter(connected).length;
    // Without tap's coverage hooks (lifecycle.ts covers the verb): the figures are an operator's.
    const r = await runCli(net, ['reload', '-c', daemon.configFile], 30_000, false);
    t.equal(r.code, 0, `reload ${i + 1}: exit 0 ${r.stderr}`);
    t.match(r.stdout, /^reloaded:\n/, `reload ${i + 1}: reloaded`);
    t.match(r.stdout, /rules changed \((1 -> 2|2 -> 1) rules\)/, `reload ${i + 1}: the rules changed`);
    t.match(r.stdout, i % 2 === 0 ? 'log.level: info -> debug' : 'log.level: debug -> info', `reload ${i + 1}: the log level changed`);
    t.match(r.stdout, i % 2 === 0 ? 'timeouts.idle: 10m -> 20m' : 'timeouts.idle: 20m -> 10m', `reload ${i + 1}: the idle timeout changed`);
    t.notMatch(r.stdout, /port \d+ (added|removed)/, `reload ${i + 1}: no port changed`);
    reloads.push({
      ms: r.ms,
      doneAt: Date.now() - loadAt,
      shortsDuring: shorts.filter(connected).length - shortsBefore,
      changes: r.stdout
        .trim()
        .split('\n')
        .slice(1)
        .map((c) => c.trim())
        .join('; '),
    });
    // One reload a second or so, so that they land at different points of the streams' lives.
    if (i < RELOADS - 1) await sleep(Math.max(0, RELOAD_EVERY - r.ms));
  }
  const streamsDoneAtLastReload = streams.reduce((n, p) => n + p.filter(isDone()).length, 0);
  t.equal(streamsDoneAtLastReload, 0, 'all 50 streams were still open when the last reload returned');
  for (const [i, r] of reloads.entries()) t.ok(r.shortsDuring > 0, `reload ${i + 1}: new connections were made while it ran (${r.shortsDuring})`);
  // The end of the load: no new short connection, and the streams FIN once they have sent all.
  shorts.write('stop\n');
  for (const p of streams) p.write('fin\n');

  // The outcome, as the daemon recorded it.
  const st = JSON.parse((await runCli(net, ['status', '--json', '-c', daemon.configFile], 30_000, false)).stdout) as {
    lastReload: { ok: boolean } | null;
    ports: { port: number; workers: { pid: number; restarts: number }[] }[];
  };
  t.match(st.lastReload, { ok: true }, 'status: the last reload was applied');
  t.same(
    st.ports.map((p) => p.workers.map((w) => w.pid)),
    workersBefore,
    'the same workers before and after: none restarted',
  );
  const reloadedLines = daemon.proc.filter((l) => l.msg === 'reloaded');
  t.equal(reloadedLines.length, RELOADS, `${RELOADS} "reloaded" log lines`);
  t.equal(daemon.proc.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('reload failed')).length, 0, 'no "reload failed" log line');

  // Every short connection.
  const shortSummary = await shorts.waitFor((l) => l.event === 'summary', { timeout: 30_000, what: 'short connections summary' });
  const shortDone = shorts.filter(isDone());
  const shortCount = Number(shortSummary.started);
  t.ok(shortCount > 0 && shortCount < SHORTS_MAX, `${shortCount} short connections started`);
  t.equal(shortDone.length, shortCount, `${shortCount} short connections reported`);
  t.equal(shortDone.filter((d) => d.connected !== true).length, 0, 'zero failed connects');
  t.same(shortSummary.ends, { eof: shortCount }, 'every short connection ended with EOF');
  t.equal(shortSummary.intact, shortCount, 'every short connection echoed intact');
  const shortServed = await shortServer.waitForCount(isDone(), shortCount, { timeout: 10_000, what: `${shortCount} short server reports` });
  const shortShas = new Set(shortServed.filter((s) => s.end === 'eof').map((s) => s.receivedSha));
  t.equal(shortDone.filter((d) => shortShas.has(d.sentSha)).length, shortCount, 'the server got each short payload, sha256 equal');

  // Every long stream, checked at both ends.
  const streamDone: Line[] = [];
  for (const [i, p] of streams.entries()) {
    const summary = await p.waitFor((l) => l.event === 'summary', { timeout: 30_000, what: `streams of ${STREAM_SIZES[i]} MiB done` });
    t.same(summary.ends, { eof: STREAMS_PER_CLIENT }, `${STREAM_SIZES[i]} MiB streams: every one ended with EOF`);
    t.equal(summary.intact, STREAMS_PER_CLIENT, `${STREAM_SIZES[i]} MiB streams: every one echoed intact`);
    for (const d of p.filter(isDone())) {
      if (d.sent !== STREAM_SIZES[i]! * MiB) t.fail(`a ${STREAM_SIZES[i]} MiB stream sent ${String(d.sent)} bytes`);
      streamDone.push(d);
    }
  }
  const total = STREAM_SIZES.length * STREAMS_PER_CLIENT;
  t.equal(streamDone.length, total, `${total} streams reported`);
  t.equal(new Set(streamDone.map((d) => d.sentSha)).size, total, 'every stream had its own payload');
  const served = await streamServer.waitForCount(isDone(), total, { timeout: 10_000, what: `${total} stream server reports` });
  const bySha = new Map(served.map((s) => [s.receivedSha, s]));
  const matched = streamDone.filter((d) => {
    const s = bySha.get(d.sentSha);
    return s !== undefined && s.received === d.sent && s.end === 'eof' && s.sentSha === d.receivedSha;
  });
  t.equal(matched.length, total, "the server received each stream's bytes and echoed them, sha256 equal at both ends");

  // The daemon's own account: one `fin` line per connection, exact counts.
  // The last line may still be on its way when the last client reports.
  await daemon.proc
    .waitForCount((l) => l.msg === 'relay closed', shortCount + total, { timeout: 5000, what: `${shortCount + total} "relay closed" lines` })
    .catch(() => undefined);
  const closed = daemon.closed();
  t.equal(closed.length, shortCount + total, `${shortCount + total} "relay closed" lines`);
  t.equal(closed.filter((l) => l.end !== 'fin').length, 0, 'every one ended with fin');
  const after = JSON.parse((await runCli(net, ['status', '--json', '-c', daemon.configFile], 30_000, false)).stdout) as { totals: Record<string, number> };
  t.match(
    after.totals,
    { active: 0, relayed: shortCount + total, denied: 0, limited: 0, connectFailed: 0 },
    'status totals: all relayed, nothing denied, limited or failed',
  );

  const bytes =
    streamDone.reduce((n, d) => n + Number(d.sent) + Number(d.received), 0) + shortDone.reduce((n, d) => n + Number(d.sent) + Number(d.received), 0);
  const longest = Math.max(...streamDone.map((d) => Number(d.ms)));
  // Whether the streams were still sending (not only open) when each reload returned.
  const firstFullySent = Math.min(...streamDone.map((d) => Number(d.fullSentMs)));
  const whileSending = reloads.filter((r) => r.doneAt < firstFullySent).length;
  t.ok(whileSending >= 1, `a reload was applied while all 50 streams were still sending (${whileSending} of ${RELOADS} were)`);
  t.comment(
    `reload under load: ${RELOADS} reloads, all applied, ${whileSending} of them while all 50 streams were sending; ${total} streams (${STREAM_SIZES.join('/')} MiB each way, paced over ${STREAM_SECONDS} s; longest open ${(longest / 1000).toFixed(1)} s) and ${shortCount} short connections (16 KiB echoed, one every ${SHORT_INTERVAL} ms)`,
  );
  t.comment(`${shortCount + total} connections, 0 failed connects, ${(bytes / MiB).toFixed(0)} MiB through the translator (both ways), every sha256 equal`);
  t.comment(
    `reload durations (\`faithd6 reload\` wall time, node start-up included): ${reloads.map((r) => `${r.ms} ms`).join(', ')}; new connections made during each: ${reloads.map((r) => r.shortsDuring).join(', ')}`,
  );
  t.comment(`changes reported: ${reloads[0]?.changes ?? ''}`);
});

t.test('SIGTERM: exit 0', async (t) => {
  t.same(await daemon.stop(20_000), { code: 0, signal: null });
});
