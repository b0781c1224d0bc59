// Metrics as an operator has them: a real Prometheus server in the client's network scrapes
// faithd6 every second. After a known number of connections its query API returns the expected
// count and rate(); promtool accepts what faithd6 serves; and a worker killed with SIGKILL makes
// no counter go down, neither in faithd6's own output nor as a reset Prometheus would see.
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ADDR, buildNetwork, translate, type Line } from '../fixtures/netns.js';
import { CLI, startDaemon } from '../fixtures/daemon.js';

if (spawnSync('prometheus', ['--version']).error) throw new Error('this test needs Prometheus and promtool: apt-get install prometheus');

const PORT = 5999;
const CONNECTIONS = 120;
const LISTEN = `[${ADDR.xl6}]:9464`;
const URL = `http://${LISTEN}/metrics`;

const net = await buildNetwork(t);
const echo = net.peer('s4', ['server', 'echo', '--host', ADDR.server4, '--port', String(PORT), '--timeout', '120']);
await echo.waitFor((l) => l.event === 'listening', { timeout: 5000, what: 's4 listening' });
const daemon = await startDaemon(t, net, { services: [{ port: PORT }], metrics: { listen: LISTEN }, limits: { newConnectionsPerSecond: 0 } });

const dir = await mkdtemp(join(tmpdir(), 'faithd6-prometheus-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));
await writeFile(
  join(dir, 'prometheus.yml'),
  `global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: faithd6
    static_configs:
      - targets: ['${LISTEN}']
`,
);
const prometheus = net.spawn(
  'c6',
  'prometheus',
  [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, '--web.listen-address=127.0.0.1:9090'],
  { label: 'c6: prometheus' },
);
t.teardown(() => prometheus.stop(5000));

/** An instant query through Prometheus's HTTP API: the first result's value, or undefined. */
async function query(expr: string): Promise<number | undefined> {
  const { stdout } = await net.run('c6', 'curl', [
    '-sS',
    '--fail',
    '--max-time',
    '5',
    '--get',
    '--data-urlencode',
    `query=${expr}`,
    'http://127.0.0.1:9090/api/v1/query',
  ]);
  const body = JSON.parse(stdout) as { status: string; data: { result: { value: [number, string] }[] } };
  if (body.status !== 'success') throw new Error(`query ${expr}: ${stdout}`);
  const first = body.data.result[0];
  return first === undefined ? undefined : Number(first.value[1]);
}

async function until<T>(what: string, timeout: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeout} ms`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** faithd6's own output, scraped from c6 as Prometheus does. */
async function scrape(): Promise<{ text: string; series: Map<string, number> }> {
  const { stdout } = await net.run('c6', 'curl', ['-sS', '--fail', '--max-time', '5', '-g', URL]);
  const series = new Map<string, number>();
  for (const line of stdout.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    series.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return { text: stdout, series };
}

const FIN = `faithd6_connections_total{port="${PORT}",end="fin"}`;

t.test('Prometheus scrapes faithd6, and its API returns the count and rate() of a known number of connections', async (t) => {
  await until('Prometheus up and scraping faithd6', 30_000, async () => ((await query('up{job="faithd6"}')) === 1 ? true : undefined));
  // Samples of the zero before the connections, over more than the window below starts.
  await until('three scrapes of the counter at 0', 15_000, async () => ((await query(`count_over_time(${FIN}[10s])`)) ?? 0) >= 3 || undefined);
  const before = Date.now();
  const client = net.peer('c6', [
    'client',
    'echo',
    '1K',
    '--host',
    translate(ADDR.server4),
    '--port',
    String(PORT),
    '--conns',
    String(CONNECTIONS),
    '--parallel',
    '10',
    '--timeout',
    '60',
  ]);
  const summary = await client.waitFor((l: Line) => l.event === 'summary', { timeout: 60_000, what: 'client summary' });
  t.equal(summary.intact, CONNECTIONS, `${CONNECTIONS} connections echoed intact`);
  const total = await until('Prometheus has the last scrape', 15_000, async () => {
    const value = await query(FIN);
    return value === CONNECTIONS ? value : undefined;
  });
  t.equal(total, CONNECTIONS, `the counter in Prometheus: ${CONNECTIONS}`);
  await new Promise((resolve) => setTimeout(resolve, 2_000)); // two more scrapes after the last connection
  // A window from 3 s before the first connection to now: rate() x window is the count (Prometheus
  // extrapolates to the window's edges, by at most about a scrape interval's share).
  const window = Math.ceil((Date.now() - before) / 1000) + 3;
  const rate = (await query(`rate(${FIN}[${window}s])`)) as number;
  const expected = CONNECTIONS / window;
  t.ok(Math.abs(rate - expected) <= expected * 0.15, `rate() over ${window}s: ${rate.toFixed(3)}/s, expected ${expected.toFixed(3)}/s (within 15%)`);
  t.equal(await query(`sum(faithd6_connections_active{port="${PORT}"})`), 0, 'none active once they closed');
  t.equal(await query(`faithd6_backend_connect_seconds_count{port="${PORT}"}`), CONNECTIONS, 'every connection in the connect-time histogram');
  t.equal(await query(`faithd6_bytes_total{port="${PORT}",direction="to_backend"}`), CONNECTIONS * 1024, 'bytes to the backend');
});

t.test('promtool accepts what faithd6 serves', async (t) => {
  const { text } = await scrape();
  const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  t.equal(check.status, 0, `promtool check metrics: ${check.stdout}${check.stderr}`);
});

t.test('a worker killed with SIGKILL makes no counter go down', async (t) => {
  const before = await scrape();
  const victim = daemon.workerPid(PORT) as number;
  const from = daemon.proc.mark();
  process.kill(victim, 'SIGKILL');
  await daemon.proc.waitFor((l) => l.msg === 'worker started' && l.port === PORT && l.worker !== victim, { timeout: 5000, from, what: 'the new worker' });
  const after = await scrape();
  let compared = 0;
  for (const [name, value] of before.series) {
    if (!name.startsWith('faithd6_') || !/_total\{|_bucket\{|_count\{|_sum\{/.test(name)) continue;
    compared += 1;
    if (!((after.series.get(name) ?? -1) >= value)) t.fail(`${name} went down: ${value} -> ${after.series.get(name)}`);
  }
  t.ok(compared > 50, `${compared} counter series, none went down`);
  t.equal(after.series.get(FIN), CONNECTIONS, "the killed worker's connections are still counted");
  t.equal(after.series.get(`faithd6_worker_restarts_total{port="${PORT}"}`), 1, 'the restart is counted');
  // Prometheus must not see a counter reset: resets() over the time around the kill is 0.
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  t.equal(await query(`sum(resets(faithd6_connections_total[1m]))`), 0, 'resets() sees none');
  t.equal(await query(`sum(resets(faithd6_bytes_total[1m]))`), 0);
});

t.test('a metrics address that cannot be bound fails the start, naming it', async (t) => {
  const file = join(dir, 'second.yaml');
  await writeFile(
    file,
    `prefixes: [64:ff9b:2::/96]\nroute: external\nservices: [{port: 6999}]\nrules: []\nmetrics: {listen: "${LISTEN}"}\nruntimeDirectory: ${join(dir, 'run2')}\n`,
    { mode: 0o644 },
  );
  const r = await net.run('xl', process.execPath, [CLI, 'run', '-c', file]).then(
    () => ({ failed: false, message: '' }),
    (err: Error) => ({ failed: true, message: err.message }),
  );
  t.equal(r.failed, true, 'the second daemon does not start');
  t.match(r.message, `faithd6: metrics ${LISTEN}: cannot listen: EADDRINUSE`);
});
