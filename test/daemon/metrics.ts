// /metrics in-process: the supervisor with stand-in workers whose counters the test sets, and
// the real HTTP listener. What each family reports, that no counter goes down when a worker
// dies and is replaced, promtool's verdict, and the listener's refusals.
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import t from 'tap';
import { Metrics, serveMetrics } from '../../src/daemon/metrics.js';
import { parseListenAddress } from '../../src/net/address.js';
import { CONNECT_BUCKETS, emptyStats, type WorkerStats } from '../../src/worker/messages.js';
import { configText, freePorts, supervisor, until, type Behaviour, type FakeWorker } from '../fixtures/fake-workers.js';

/** A worker whose pongs report `stats()` at the time of each ping. */
const reporting =
  (stats: () => WorkerStats): Behaviour =>
  (worker, message) => {
    if (message.type === 'listen') worker.reply({ type: 'listening', dataPlane: 'js', fallback: null });
    if (message.type === 'ping') worker.reply({ type: 'pong', seq: message.seq, stats: stats() });
    if (message.type === 'drain') worker.exit(0, null);
  };

/** Series of an exposition text: `name{labels}` → value. */
function parse(text: string): Map<string, number> {
  const series = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    series.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return series;
}

async function scrape(port: number, path = '/metrics', method = 'GET'): Promise<{ status: number; text: string; type: string | null }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { method });
  return { status: response.status, text: await response.text(), type: response.headers.get('content-type') };
}

t.test('every family, from the workers counters, and none goes down when a worker is replaced', async (t) => {
  const [service, listen] = (await freePorts(2)) as [number, number];
  // What the current process of the port has counted; a replacement starts from zero.
  let counted = emptyStats();
  const { sup, workers } = await supervisor(t, configText(`[{port: ${service}}]`), () => reporting(() => counted));
  await sup.start();
  const metrics = new Metrics(sup);
  const server = await serveMetrics(metrics, parseListenAddress(`127.0.0.1:${listen}`), (await import('pino')).pino({ level: 'silent' }));
  t.teardown(() => new Promise((resolve) => server.close(resolve)));

  const connect = new Array<number>(CONNECT_BUCKETS.length + 1).fill(0);
  connect[0] = 2; // two under 0.5 ms
  connect[4] = 1; // one under 10 ms
  counted = {
    ...emptyStats(),
    active: 2,
    relayed: 3,
    up: 1000,
    down: 5000,
    ends: { fin: 3, refused: 1, 'connect timeout': 2, denied: 4 },
    deniedBy: { 'no matching rule': 4 },
    limitedBy: { connectionsPerSource: 6 },
    connectSeconds: connect,
    connectSecondsSum: 0.012,
    cpuSeconds: 1.5,
    rssBytes: 50e6,
  };
  const first = await scrape(listen);
  t.equal(first.status, 200);
  t.match(first.type, 'text/plain; version=0.0.4');
  const s = parse(first.text);
  const p = `port="${service}"`;
  t.equal(s.get(`faithd6_connections_total{${p},end="fin"}`), 3);
  t.equal(s.get(`faithd6_connections_total{${p},end="denied"}`), 4);
  t.equal(s.get(`faithd6_connections_active{${p}}`), 2);
  t.equal(s.get(`faithd6_bytes_total{${p},direction="to_backend"}`), 1000);
  t.equal(s.get(`faithd6_bytes_total{${p},direction="to_client"}`), 5000);
  t.equal(s.get(`faithd6_denied_total{${p},reason="no matching rule"}`), 4);
  t.equal(s.get(`faithd6_limit_hits_total{${p},limit="connectionsPerSource"}`), 6);
  t.equal(s.get(`faithd6_backend_connect_failures_total{${p},reason="refused"}`), 1);
  t.equal(s.get(`faithd6_backend_connect_failures_total{${p},reason="connect timeout"}`), 2);
  t.equal(s.get(`faithd6_backend_connect_failures_total{${p},reason="fin"}`), undefined, 'only the ends that are connect failures');
  t.equal(s.get(`faithd6_backend_connect_seconds_bucket{${p},le="0.0005"}`), 2, 'buckets are cumulative');
  t.equal(s.get(`faithd6_backend_connect_seconds_bucket{${p},le="0.005"}`), 2);
  t.equal(s.get(`faithd6_backend_connect_seconds_bucket{${p},le="0.01"}`), 3);
  t.equal(s.get(`faithd6_backend_connect_seconds_bucket{${p},le="+Inf"}`), 3);
  t.equal(s.get(`faithd6_backend_connect_seconds_count{${p}}`), 3);
  t.equal(s.get(`faithd6_backend_connect_seconds_sum{${p}}`), 0.012);
  t.equal(s.get(`faithd6_worker_cpu_seconds_total{${p}}`), 1.5);
  t.equal(s.get(`faithd6_worker_resident_memory_bytes{${p}}`), 50e6);
  t.equal(s.get(`faithd6_worker_restarts_total{${p}}`), 0);
  t.equal(s.get(`faithd6_workers{${p}}`), 1);
  t.equal(s.get('faithd6_reloads_total{result="applied"}'), 0);
  t.ok(
    [...s.keys()].some((k) => k.startsWith('faithd6_build_info{version="')),
    'build info',
  );
  t.ok(s.has('process_cpu_seconds_total') && s.has('process_resident_memory_bytes'), "the supervisor's process metrics");
  t.notOk(
    [...s.keys()].some((k) => k.includes(':') || k.includes('2001')),
    'no address in any label',
  );

  // The worker dies (as under SIGKILL: no last words); its replacement has counted nothing yet.
  counted = { ...emptyStats(), active: 0 };
  (workers[0] as FakeWorker).exit(null, 'SIGKILL');
  await until('the replacement', () => workers.length === 2 && workers[1]?.received.some((m) => m.type === 'listen') === true);
  const after = parse((await scrape(listen)).text);
  for (const [name, value] of s) {
    if (!name.startsWith('faithd6_') || /active|resident|faithd6_workers\{/.test(name)) continue;
    t.ok((after.get(name) ?? 0) >= value, `${name}: ${value} -> ${after.get(name)}, not down`);
  }
  t.equal(after.get(`faithd6_connections_total{${p},end="fin"}`), 3, "the dead worker's connections are still counted");
  t.equal(after.get(`faithd6_connections_active{${p}}`), 0, 'but not as active');
  t.equal(after.get(`faithd6_worker_restarts_total{${p}}`), 1);
  counted = { ...emptyStats(), relayed: 1, ends: { fin: 1 } };
  t.equal(parse((await scrape(listen)).text).get(`faithd6_connections_total{${p},end="fin"}`), 4, 'and the new one adds to them');

  const refused = await sup.reload();
  t.equal(refused.ok, true);
  t.equal(parse((await scrape(listen)).text).get('faithd6_reloads_total{result="applied"}'), 1, 'reloads are counted');

  if (spawnSync('promtool', ['--version']).error) {
    t.fail('promtool is not installed (Debian package prometheus; .ci/run installs it)');
  } else {
    const check = spawnSync('promtool', ['check', 'metrics'], { input: first.text, encoding: 'utf8' });
    t.equal(check.status, 0, `promtool check metrics: ${check.stdout}${check.stderr}`);
  }
});

t.test('the listener serves GET /metrics and nothing else', async (t) => {
  const [listen] = (await freePorts(1)) as [number];
  const metrics = new Metrics({ counters: () => Promise.resolve([]), reloads: { applied: 0, refused: 0 } });
  const server = await serveMetrics(metrics, parseListenAddress(`127.0.0.1:${listen}`), (await import('pino')).pino({ level: 'silent' }));
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  t.equal((await scrape(listen, '/metrics?x=1')).status, 200, 'a query string is fine');
  t.equal((await scrape(listen, '/metrics', 'HEAD')).status, 200);
  const post = await scrape(listen, '/metrics', 'POST');
  t.equal(post.status, 405, 'POST: method not allowed');
  t.equal((await scrape(listen, '/')).status, 404);
  t.equal((await scrape(listen, '/metrics/../status')).status, 404);

  /** A raw request; what the server answers before it closes. */
  const raw = (bytes: string, wait = 8_000) =>
    new Promise<{ text: string; ms: number }>((resolve, reject) => {
      const started = Date.now();
      const socket = net.connect(listen, '127.0.0.1', () => socket.write(bytes));
      let text = '';
      socket.on('data', (chunk) => (text += chunk.toString('latin1')));
      socket.on('close', () => resolve({ text, ms: Date.now() - started }));
      socket.on('error', () => undefined);
      setTimeout(() => reject(new Error(`still open after ${wait} ms`)), wait).unref();
    });
  t.match((await raw('GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello')).text, /^HTTP\/1\.1 413 /, 'a request body: refused');
  t.match((await raw(`GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(9000)}\r\n\r\n`)).text, /^HTTP\/1\.1 431 /, 'headers over 8 KiB: refused');
  const slow = await raw('GET /metrics HTTP/1.1\r\nHost: x\r\n');
  t.ok(slow.ms >= 4_000 && slow.ms < 8_000, `headers never finished: closed after ${slow.ms} ms (the 5 s headers timeout)`);
});
