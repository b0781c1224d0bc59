/**
 * Prometheus metrics, served by the supervisor, which gathers every worker's counters. Each
 * scrape takes one snapshot (Supervisor.counters(): the live workers asked afresh, plus what
 * exited ones left, so that no counter goes down when a worker restarts); prom-client turns it
 * into the exposition format. No client address is ever a label.
 */
import http from 'node:http';
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import { FaithdError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ListenAddress } from '../net/address.js';
import { CONNECT_FAILURES, END_REASONS } from '../relay/relay.js';
import { version } from '../version.js';
import { CONNECT_BUCKETS, DURATION_BUCKETS, type WorkerStats } from '../worker/messages.js';
import type { PortCounters } from './counters.js';

/** What the metrics are read from: the supervisor. */
export interface MetricsSource {
  counters(): Promise<PortCounters[]>;
  readonly reloads: { readonly applied: number; readonly refused: number };
}

/** Every way a connection ends: relayed ones (EndReason), and those refused at accept. */
const ZERO_ENDS: Readonly<Record<string, number>> = Object.fromEntries([...END_REASONS, 'denied', 'not translated', 'limit'].map((end) => [end, 0]));

type Labels = Record<string, string>;
type Series = readonly (readonly [Labels, number])[];

/**
 * A histogram whose buckets the workers counted: prom-client's Histogram only observes values
 * one at a time, so this metric reports bucket counts it is given, in prom-client's own shape.
 */
class BucketHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[],
    private readonly read: () => readonly { labels: Labels; counts: readonly number[]; sum: number }[],
  ) {}

  get() {
    const values = this.read().flatMap(({ labels, counts, sum }) => {
      let cumulative = 0;
      const buckets = [...this.bounds, Infinity].map((bound, i) => {
        cumulative += counts[i] ?? 0;
        return { labels: { ...labels, le: bound === Infinity ? '+Inf' : String(bound) }, value: cumulative, metricName: `${this.name}_bucket` };
      });
      return [...buckets, { labels, value: sum, metricName: `${this.name}_sum` }, { labels, value: cumulative, metricName: `${this.name}_count` }];
    });
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {}
}

export class Metrics {
  readonly registry = new Registry();
  private snapshot: PortCounters[] = [];
  private scraping: Promise<string> | undefined;

  constructor(private readonly source: MetricsSource) {
    const { registry } = this;
    const perPort = (read: (stats: WorkerStats) => number) => (): Series => this.snapshot.map((p) => [{ port: String(p.port) }, read(p.stats)]);
    const byKey =
      (label: string, read: (stats: WorkerStats) => Record<string, number>, keep: (key: string) => boolean = () => true) =>
      (): Series =>
        this.snapshot.flatMap((p) =>
          Object.entries(read(p.stats))
            .filter(([key]) => keep(key))
            .map(([key, n]) => [{ port: String(p.port), [label]: key }, n] as const),
        );
    // Each family is set afresh from the snapshot at every scrape: reset, then each series to its
    // value (inc after a reset sets it, for counters and gauges alike).
    const family = (Kind: typeof Counter | typeof Gauge) => (name: string, help: string, labelNames: string[], series: () => Series) =>
      new Kind({
        name,
        help,
        labelNames,
        registers: [registry],
        collect(this: Counter | Gauge) {
          this.reset();
          for (const [labels, value] of series()) this.inc(labels, value);
        },
      });
    const counter = family(Counter);
    const gauge = family(Gauge);

    // Every end is reported from zero, so that rate() and increase() see the first connection.
    const ends = (stats: WorkerStats) => ({ ...ZERO_ENDS, ...stats.ends });
    counter('faithd6_connections_total', 'Connections accepted on a service port, by how they ended.', ['port', 'end'], byKey('end', ends));
    gauge(
      'faithd6_connections_active',
      'Relayed connections open now.',
      ['port'],
      perPort((s) => s.active),
    );
    counter('faithd6_bytes_total', 'Bytes relayed, by direction.', ['port', 'direction'], () =>
      this.snapshot.flatMap((p) => [
        [{ port: String(p.port), direction: 'to_backend' }, p.stats.up] as const,
        [{ port: String(p.port), direction: 'to_client' }, p.stats.down] as const,
      ]),
    );
    counter(
      'faithd6_denied_total',
      'Connections refused by the access rules, by reason.',
      ['port', 'reason'],
      byKey('reason', (s) => s.deniedBy),
    );
    counter(
      'faithd6_limit_hits_total',
      'Connections reset because a limit was reached, by limit.',
      ['port', 'limit'],
      byKey('limit', (s) => s.limitedBy),
    );
    counter(
      'faithd6_backend_connect_failures_total',
      'Relayed connections whose backend could not be reached, by reason.',
      ['port', 'reason'],
      byKey('reason', ends, (end) => CONNECT_FAILURES.has(end)),
    );
    counter(
      'faithd6_accept_errors_total',
      'accept() failures the listener survived.',
      ['port'],
      perPort((s) => s.acceptErrors),
    );
    const histogram = (name: string, help: string, bounds: readonly number[], read: (s: WorkerStats) => { counts: number[]; sum: number }) =>
      registry.registerMetric(
        new BucketHistogram(name, help, bounds, () => this.snapshot.map((p) => ({ labels: { port: String(p.port) }, ...read(p.stats) }))) as unknown as Metric,
      );
    histogram('faithd6_backend_connect_seconds', 'Time from accepting a connection to its backend answering.', CONNECT_BUCKETS, (s) => ({
      counts: s.connectSeconds,
      sum: s.connectSecondsSum,
    }));
    histogram('faithd6_connection_duration_seconds', 'How long relayed connections lasted, from accept to close.', DURATION_BUCKETS, (s) => ({
      counts: s.durationSeconds,
      sum: s.durationSecondsSum,
    }));
    counter('faithd6_reloads_total', 'Reloads, by result.', ['result'], () => [
      [{ result: 'applied' }, source.reloads.applied],
      [{ result: 'refused' }, source.reloads.refused],
    ]);
    counter('faithd6_worker_restarts_total', 'Worker processes restarted after one exited.', ['port'], () =>
      this.snapshot.map((p) => [{ port: String(p.port) }, p.restarts]),
    );
    gauge('faithd6_workers', 'Worker processes configured for the port.', ['port'], () => this.snapshot.map((p) => [{ port: String(p.port) }, p.workers]));
    counter(
      'faithd6_worker_cpu_seconds_total',
      "CPU time of the port's worker processes, user and system.",
      ['port'],
      perPort((s) => s.cpuSeconds),
    );
    gauge(
      'faithd6_worker_resident_memory_bytes',
      "Resident memory of the port's worker processes.",
      ['port'],
      perPort((s) => s.rssBytes),
    );
    gauge('faithd6_build_info', 'Always 1: the version of faithd6 and of Node.js that runs it.', ['version', 'nodejs'], () => [
      [{ version: version(), nodejs: process.versions.node }, 1],
    ]);
    // The supervisor's own process: process_cpu_seconds_total, process_resident_memory_bytes, ...
    collectDefaultMetrics({ register: registry });
    // Gauges whose names end in _total, against the conventions (promtool says so): their
    // per-type siblings (nodejs_active_handles, ...) stay.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(name);
  }

  /** The exposition text of a fresh snapshot; concurrent scrapes share one. */
  render(): Promise<string> {
    this.scraping ??= (async () => {
      try {
        this.snapshot = await this.source.counters();
        return await this.registry.metrics();
      } finally {
        this.scraping = undefined;
      }
    })();
    return this.scraping;
  }
}

/** Bounds of the metrics listener: Prometheus sends one small GET; anything else is refused. */
const MAX_HEADER_BYTES = 8 * 1024;
const HEADERS_TIMEOUT = 5_000;
const REQUEST_TIMEOUT = 10_000;
const MAX_CONNECTIONS = 16;

/**
 * Serves GET /metrics (and HEAD) at `listen`, hardened like the control socket: bounded
 * headers, timeouts, a few connections at once, no request body, nothing but /metrics.
 */
export async function serveMetrics(metrics: Metrics, listen: ListenAddress, log: Logger): Promise<http.Server> {
  const server = http.createServer(
    {
      maxHeaderSize: MAX_HEADER_BYTES,
      headersTimeout: HEADERS_TIMEOUT,
      requestTimeout: REQUEST_TIMEOUT,
      keepAliveTimeout: 5_000,
      // How often the timeouts above are checked (Node's default is every 30 s).
      connectionsCheckingInterval: 1_000,
    },
    (req, res) => {
      const refuse = (status: number, text: string, headers: Record<string, string> = {}) => {
        res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', connection: 'close', ...headers });
        res.end(`${text}\n`);
      };
      if (req.method !== 'GET' && req.method !== 'HEAD') return refuse(405, 'only GET /metrics', { allow: 'GET, HEAD' });
      if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined) return refuse(413, 'no request body');
      const path = (req.url ?? '').split('?')[0];
      if (path !== '/metrics') return refuse(404, 'only GET /metrics');
      metrics.render().then(
        (text) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(req.method === 'HEAD' ? undefined : text);
        },
        (err: Error) => {
          log.error({ err: err.message }, 'metrics failed');
          refuse(500, 'metrics failed');
        },
      );
    },
  );
  server.maxConnections = MAX_CONNECTIONS;
  // A request that does not parse, or breaks a bound: one status line, then the connection goes.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    const status =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? '431 Request Header Fields Too Large'
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? '408 Request Timeout'
          : '400 Bad Request';
    if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new FaithdError('LISTEN', `metrics ${listen.text}: cannot listen: ${err.code ?? err.message}`, { cause: err })),
    );
    server.listen({ host: listen.host, port: listen.port, ipv6Only: listen.host.includes(':') }, resolve);
  });
  return server;
}
