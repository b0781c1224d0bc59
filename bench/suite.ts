// The measurements, run inside the bench's network namespace (bench/run.ts creates it and
// starts this file there): starts the IPv4 server and the systems, runs every figure for
// every system (throughput one stream and several, each direction; latency; connection
// churn; idle memory), round after round with the order of the systems rotated each round,
// and prints the tables, checks the performance targets (for each faithd6 row: one per worker count)
// and writes the raw numbers to bench/results/. faithd6 as built at other revisions (run.ts
// makes the trees for `--rev`) gets a row each, measured like the others but not checked.
import os from 'node:os';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { iperf3, withIperf3Server, type Iperf3Run } from './iperf3.js';
import { Child, liveChildren, treeCpuSeconds, treeMemory, type Memory, type Message } from './proc.js';
import { spread, table, type Column, type Row, type Spread } from './report.js';
import * as systems from './systems.js';
import type { System } from './systems.js';

const { values: opts } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    'bulk-mib': { type: 'string', default: '256' },
    'bulk-max-ms': { type: 'string', default: '3000' },
    streams: { type: 'string', default: '4' },
    'latency-count': { type: 'string', default: '20000' },
    'latency-ms': { type: 'string', default: '2000' },
    'churn-ms': { type: 'string', default: '3000' },
    clients: { type: 'string', default: '50' },
    idle: { type: 'string', default: '5000' },
    'idle-rounds': { type: 'string', default: '2' },
    'idle-forking': { type: 'string', default: '1000' },
    log: { type: 'string', default: 'warn' },
    workers: { type: 'string', default: '1,2' },
    // faithd6's data planes, a row each per worker count (splice: one worker only).
    planes: { type: 'string', default: 'native,js,splice' },
    // faithd6 rows with metrics (scraped each second), a PROXY header v1 and v2, a source address.
    variants: { type: 'boolean', default: false },
    // iperf3's client through every system after the rounds, each stream count this long (0: none).
    'iperf3-seconds': { type: 'string', default: '3' },
    // From run.ts, one per `--rev`: the revision and its compiled tree, as JSON.
    'rev-tree': { type: 'string', multiple: true, default: [] },
  },
});

/**
 * `--workers 1,2`: faithd6's worker counts, a row each, in ascending order. Checked before any
 * system starts: a wrong count would otherwise show up as a failed row after the setup.
 */
function workerCounts(text: string): number[] {
  const counts = text.split(',').map((c) => (c.trim() === '' ? NaN : Number(c)));
  if (counts.some((n) => !Number.isInteger(n) || n < 1 || n > 64)) {
    process.stderr.write(`bench: --workers ${text}: expected worker counts separated by commas, each from 1 to 64 (faithd6's limit), e.g. 1,2\n`);
    process.exit(64); // EX_USAGE
  }
  return [...new Set(counts)].sort((a, b) => a - b);
}
type Plane = 'native' | 'js' | 'splice';

/** `--planes native,js,splice`: faithd6's data planes (splice: the native plane moving bulk with splice(2), not read/write). */
function planeList(text: string): Plane[] {
  const planes = text.split(',').map((p) => p.trim());
  if (planes.length === 0 || planes.some((p) => p !== 'native' && p !== 'js' && p !== 'splice')) {
    process.stderr.write(`bench: --planes ${text}: expected some of native, js, splice, separated by commas\n`);
    process.exit(64); // EX_USAGE
  }
  return [...new Set(planes as Plane[])];
}

/** faithd6 at another revision: what `--rev` asked for, the commit, and its compiled tree. */
interface RevisionTree {
  requested: string;
  full: string;
  short: string;
  tree: string;
}

/** run.ts's `--rev-tree` values; anything else is a bug in run.ts, said at once. */
function revisionTrees(values: readonly string[]): RevisionTree[] {
  return values.map((text) => {
    const v = JSON.parse(text) as Partial<RevisionTree>;
    if (![v.requested, v.full, v.short, v.tree].every((x) => typeof x === 'string' && x !== '')) {
      process.stderr.write(`bench: --rev-tree ${text}: expected {requested, full, short, tree} from run.ts\n`);
      process.exit(64); // EX_USAGE
    }
    return v as RevisionTree;
  });
}

const SETTINGS = Object.freeze({
  rounds: Number(opts.rounds),
  bulkBytes: Number(opts['bulk-mib']) * 1024 * 1024,
  bulkMaxMs: Number(opts['bulk-max-ms']),
  parallelStreams: Number(opts.streams),
  latencyCount: Number(opts['latency-count']),
  latencyMaxMs: Number(opts['latency-ms']),
  churnMs: Number(opts['churn-ms']),
  churnClients: Number(opts.clients),
  idleConnections: Number(opts.idle),
  /** The memory figure is slow (a fresh relay, thousands of connections) and steady: fewer rounds. */
  idleRounds: Math.min(Number(opts['idle-rounds']), Number(opts.rounds)),
  /** socat forks a process per connection: fewer idle connections for it (the figure is per connection). */
  idleForking: Number(opts['idle-forking']),
  faithd6LogLevel: opts.log ?? 'warn',
  /** Worker processes on faithd6's port, one row each (haproxy runs a thread per core, socat a process per connection). */
  faithd6Workers: workerCounts(opts.workers ?? '1,2'),
  /** faithd6's data planes: a row per worker count each (splice: 1 worker). */
  faithd6Planes: planeList(opts.planes ?? 'native,js,splice'),
  /** faithd6 at other revisions (`--rev`), a one-worker row each, on the current row's config. */
  faithd6Revisions: revisionTrees(opts['rev-tree'] ?? []),
  /** Rows of faithd6 (1 worker) with one feature each turned on, to measure what it costs. */
  faithd6Variants: opts.variants === true,
  /** Time the relay gets after the last idle connection opened, before its memory is read. */
  idleSettleMs: 1000,
});
const PORTS = { 'node-pipe': 6001, socat: 6003, haproxy: 6004, 'haproxy-splice': 6005 } as const;
/** The fresh instances the memory figure is measured on. */
const MEMORY_PORTS = { 'node-pipe': 7001, socat: 7003, haproxy: 7004, 'haproxy-splice': 7005 } as const;
/**
 * faithd6 with `workers` workers: 6002 for one, 6012 for two, 6022 for three… (its memory
 * instances on 7002, 7012…), on the JavaScript plane 6007, 6017…, native with read/write 6008: up to 64
 * workers these stay clear of every other port here.
 */
const faithd6Port = (workers: number, base = 6000, plane: Plane = 'native'): number => base + { native: 2, js: 7, splice: 8 }[plane] + 10 * (workers - 1);
/**
 * faithd6 at the i-th `--rev` (from 0): 6702, 6712… (memory: 7702, 7712…), above the ports of
 * 64 workers; run.ts allows 30 revisions, which stay below 7001 and 8001.
 */
const revisionPort = (i: number, base = 6000): number => base + 702 + 10 * i;
/** The variant rows (`--variants`): 6602, 6612… (memory: 7602…); a metrics row listens 3000 above. */
const variantPort = (i: number, base = 6000): number => base + 602 + 10 * i;
const VARIANTS: readonly { name: string; extras: (port: number) => systems.Faithd6Extras }[] = [
  { name: 'faithd6 +metrics', extras: (port) => ({ metricsListen: `127.0.0.1:${port + 3000}` }) },
  { name: 'faithd6 +proxy v1', extras: () => ({ proxyProtocol: 'v1' }) },
  { name: 'faithd6 +proxy v2', extras: () => ({ proxyProtocol: 'v2' }) },
  { name: 'faithd6 +source', extras: () => ({ source: systems.SOURCE4 }) },
];
/** The load generator and the IPv4 server, one C program (bench/gen.c), built by run.ts. */
const GEN = join(systems.BENCH_DIST, 'gen');

/** The bulk variants: one stream and several, each direction. */
const BULK_KINDS = {
  up1: { streams: 1, direction: 'up' },
  down1: { streams: 1, direction: 'down' },
  upN: { streams: SETTINGS.parallelStreams, direction: 'up' },
  downN: { streams: SETTINGS.parallelStreams, direction: 'down' },
} as const;
type BulkKind = keyof typeof BULK_KINDS;
const BULK_NAMES: Record<BulkKind, string> = {
  up1: '1 stream client→server',
  down1: '1 stream server→client',
  upN: `${SETTINGS.parallelStreams} streams client→server`,
  downN: `${SETTINGS.parallelStreams} streams server→client`,
};

type Failure = { round: number; error: string };
interface BulkRun {
  round: number;
  streams: number;
  direction: string;
  gbps: number;
  sent: number;
  received: number;
  ms: number;
  /** CPU seconds the relay's processes used during the run (null for direct). */
  relayCpuSeconds: number | null;
  relayCpuSecondsPerGB: number | null;
}
interface LatencyRun {
  round: number;
  count: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}
interface ChurnRun {
  round: number;
  rate: number;
  connections: number;
  /** CPU seconds the relay's processes used during the run (null for direct), and per connection in µs. */
  relayCpuSeconds: number | null;
  relayCpuMicrosPerConnection: number | null;
  errors: number;
  ms: number;
  errorCodes: Record<string, number>;
}
interface IdleRun {
  round: number;
  open: number;
  errors: number;
  before: Memory;
  after: Memory;
  rssKiBPerConnection: number;
  pssKiBPerConnection: number;
}
interface Runs {
  bulk: Record<BulkKind, (BulkRun | Failure)[]>;
  latency: (LatencyRun | Failure)[];
  churn: (ChurnRun | Failure)[];
  idle: (IdleRun | Failure)[];
  /** One run per stream count, after the rounds (round 0). */
  iperf3: (Iperf3Run | Failure)[];
}

function say(text: string): void {
  process.stdout.write(text + '\n');
}

function ok<T extends object>(run: T | Failure): run is T {
  return !('error' in run);
}

function load(label: string, args: string[]): Child {
  return new Child(label, GEN, args);
}

/** One bulk run: all its streams from one generator (a thread each); the relay's CPU counted from "go" to the result. */
async function bulk(system: System, round: number, kind: BulkKind, bytes = SETTINGS.bulkBytes): Promise<BulkRun> {
  const { streams, direction } = BULK_KINDS[kind];
  const generator = load('bulk', ['bulk', system.host, String(system.port), String(bytes), String(SETTINGS.bulkMaxMs), String(streams), direction]);
  try {
    await generator.next(10_000, 'ready');
    const root = system.child?.pid;
    const cpu0 = root === undefined ? 0 : treeCpuSeconds(root);
    generator.send('go');
    const r = await generator.next(SETTINGS.bulkMaxMs + 30_000, 'bulk result');
    const cpu = root === undefined ? null : treeCpuSeconds(root) - cpu0;
    if (typeof r.error === 'string') throw new Error(r.error);
    const sent = Number(r.sent);
    const received = Number(r.received);
    const ms = Number(r.ms);
    if (received !== sent) throw new Error(`${received} of ${sent} bytes arrived`);
    return {
      round,
      streams,
      direction,
      gbps: (received * 8) / (ms * 1e6),
      sent,
      received,
      ms,
      relayCpuSeconds: cpu,
      relayCpuSecondsPerGB: cpu === null ? null : cpu / (received / 1e9),
    };
  } finally {
    await generator.stop();
  }
}

async function latency(system: System, round: number, count = SETTINGS.latencyCount, ms = SETTINGS.latencyMaxMs): Promise<LatencyRun> {
  const client = load('latency', ['latency', system.host, String(system.port), String(count), String(ms)]);
  try {
    const r = await client.next(ms + 30_000, 'latency result');
    if (typeof r.error === 'string') throw new Error(r.error);
    return {
      round,
      count: Number(r.count),
      p50: Number(r.p50),
      p90: Number(r.p90),
      p99: Number(r.p99),
      p999: Number(r.p999),
      max: Number(r.max),
      mean: Number(r.mean),
    };
  } finally {
    await client.stop();
  }
}

/** One churn run: all the clients from one generator (a thread each). */
async function churn(system: System, round: number, ms = SETTINGS.churnMs): Promise<ChurnRun> {
  const generator = load('churn', ['churn', system.host, String(system.port), String(SETTINGS.churnClients), String(ms)]);
  try {
    await generator.next(10_000, 'ready');
    const root = system.child?.pid;
    const cpu0 = root === undefined ? 0 : treeCpuSeconds(root);
    generator.send('go');
    const r = await generator.next(ms + 30_000, 'churn result');
    const cpu = root === undefined ? null : treeCpuSeconds(root) - cpu0;
    if (typeof r.error === 'string') throw new Error(r.error);
    const connections = Number(r.connections);
    const elapsed = Number(r.ms);
    return {
      round,
      rate: (connections * 1000) / elapsed,
      connections,
      relayCpuSeconds: cpu,
      relayCpuMicrosPerConnection: cpu === null || connections === 0 ? null : (cpu * 1e6) / connections,
      errors: Number(r.errors),
      ms: elapsed,
      errorCodes: r.errorCodes as Record<string, number>,
    };
  } finally {
    await generator.stop();
  }
}

/** Open `count` idle connections through `system`; resolves once they are open, with their holder. */
async function openIdle(system: System, count: number): Promise<{ holder: Child; open: number; errors: number }> {
  const holder = load('idle holder', ['idle', system.host, String(system.port), String(count)]);
  try {
    const opened = await holder.next(120_000, 'idle connections');
    if (typeof opened.error === 'string') throw new Error(opened.error);
    return { holder, open: Number(opened.open), errors: Number(opened.errors) };
  } catch (err) {
    await holder.stop();
    throw err;
  }
}

async function closeIdle(holder: Child): Promise<void> {
  holder.send('close');
  try {
    await holder.next(15_000, 'close');
  } finally {
    await holder.stop();
  }
}

/**
 * Memory per idle connection, on a fresh instance of the relay: one that has carried the
 * throughput and churn runs holds their garbage until its GC runs, which moves RSS by more
 * than thousands of connections take. The fresh one first relays (and closes) 100
 * connections, so that what is allocated once, on first use, is in the baseline.
 */
async function idle(start: (port: number) => Promise<System>, port: number, round: number, count: number): Promise<IdleRun> {
  const fresh = await start(port);
  if (fresh.unavailable !== null || fresh.child === null) throw new Error(`fresh instance ${fresh.unavailable ?? 'has no process'}`);
  const root = fresh.child.pid;
  try {
    await closeIdle((await openIdle(fresh, 100)).holder);
    await sleep(SETTINGS.idleSettleMs);
    const before = treeMemory(root);
    const { holder, open, errors } = await openIdle(fresh, count);
    try {
      await sleep(SETTINGS.idleSettleMs);
      const after = treeMemory(root);
      if (open === 0) throw new Error(`no connection opened (${errors} errors)`);
      if (open < count) throw new Error(`only ${open} of ${count} connections opened (${errors} errors)`);
      return {
        round,
        open,
        errors,
        before,
        after,
        rssKiBPerConnection: (after.rssKiB - before.rssKiB) / open,
        pssKiBPerConnection: (after.pssKiB - before.pssKiB) / open,
      };
    } finally {
      await closeIdle(holder);
    }
  } finally {
    await fresh.child.stop(10_000);
  }
}

/** Set by SIGINT/SIGTERM: no further measurement starts, and no table is printed. */
let interrupted = false;

async function attempt<T>(round: number, what: () => Promise<T>): Promise<T | Failure> {
  if (interrupted) throw new Error('interrupted');
  try {
    return await what();
  } catch (err) {
    if (interrupted) throw new Error('interrupted'); // a child killed by the same signal
    return { round, error: (err as Error).message };
  }
}

function rotate<T>(list: readonly T[], by: number): T[] {
  const k = by % list.length;
  return [...list.slice(k), ...list.slice(0, k)];
}

function machine(): Record<string, unknown> {
  const cpus = os.cpus();
  return {
    nproc: os.availableParallelism(),
    cpuModel: cpus[0]?.model ?? 'unknown',
    node: process.version,
    kernel: os.release(),
    memTotalMiB: Math.round(os.totalmem() / 2 ** 20),
    loadAverage: os.loadavg(),
    hostname: os.hostname(),
  };
}

/** The figures, as tables of a few columns each (one wide table would not fit a terminal). */
const TABLES: readonly { title: string; columns: readonly Column[] }[] = [
  {
    title: 'Throughput, Gbit/s (higher is better)',
    columns: [
      { key: 'up1', title: '1 stream c→s', digits: 2, ratio: true },
      { key: 'down1', title: '1 stream s→c', digits: 2, ratio: true },
      { key: 'upN', title: `${SETTINGS.parallelStreams} streams c→s`, digits: 2, ratio: true },
      { key: 'downN', title: `${SETTINGS.parallelStreams} streams s→c`, digits: 2, ratio: true },
    ],
  },
  {
    title: 'Connections and latency',
    columns: [
      { key: 'connectionRate', title: 'connections/s', digits: 0, ratio: true },
      { key: 'latencyP50', title: 'latency p50, µs', digits: 0, ratio: true },
      { key: 'latencyP99', title: 'latency p99, µs', digits: 0, ratio: true },
    ],
  },
  {
    title: "Relay resources (the relay's processes summed; direct has none, so no ratio)",
    columns: [
      { key: 'rssPerConnection', title: 'RSS, KiB per idle conn', digits: 1, ratio: false },
      { key: 'pssPerConnection', title: 'PSS, KiB per idle conn', digits: 1, ratio: false },
      { key: 'cpuPerGB', title: 'CPU s per GB (1 stream c→s)', digits: 2, ratio: false },
      { key: 'cpuPerConnection', title: 'CPU µs per connection', digits: 0, ratio: false },
    ],
  },
  {
    title: 'iperf3, Gbit/s (one run each, after the rounds)',
    columns: [
      { key: 'iperf3Up1', title: '1 stream c→s', digits: 2, ratio: true },
      { key: 'iperf3UpN', title: `${SETTINGS.parallelStreams} streams c→s`, digits: 2, ratio: true },
    ],
  },
];

function figures(runs: Runs): Record<string, Spread | null> {
  const gbps = (kind: BulkKind): Spread | null => spread(runs.bulk[kind].filter(ok<BulkRun>).map((r) => r.gbps));
  const latencyRuns = runs.latency.filter(ok<LatencyRun>);
  const iperf3Runs = runs.iperf3.filter(ok<Iperf3Run>);
  const allBulk = Object.values(runs.bulk)
    .flat()
    .filter(ok<BulkRun>);
  return {
    up1: gbps('up1'),
    down1: gbps('down1'),
    upN: gbps('upN'),
    downN: gbps('downN'),
    connectionRate: spread(runs.churn.filter(ok<ChurnRun>).map((r) => r.rate)),
    latencyP50: spread(latencyRuns.map((r) => r.p50)),
    latencyP99: spread(latencyRuns.map((r) => r.p99)),
    rssPerConnection: spread(runs.idle.filter(ok<IdleRun>).map((r) => r.rssKiBPerConnection)),
    pssPerConnection: spread(runs.idle.filter(ok<IdleRun>).map((r) => r.pssKiBPerConnection)),
    cpuPerGB: spread(runs.bulk.up1.filter(ok<BulkRun>).map((r) => r.relayCpuSecondsPerGB)),
    cpuPerGBUpN: spread(runs.bulk.upN.filter(ok<BulkRun>).map((r) => r.relayCpuSecondsPerGB)),
    cpuPerConnection: spread(runs.churn.filter(ok<ChurnRun>).map((r) => r.relayCpuMicrosPerConnection)),
    // Every bulk variant: the relay's CPU per GB over all directions and stream counts.
    cpuPerGBAllBulk: spread(allBulk.map((r) => r.relayCpuSecondsPerGB)),
    iperf3Up1: spread(iperf3Runs.filter((r) => r.streams === 1).map((r) => r.gbps)),
    iperf3UpN: spread(iperf3Runs.filter((r) => r.streams !== 1).map((r) => r.gbps)),
  };
}

interface Target {
  target: string;
  /** The faithd6 row's median. */
  value: number | null;
  bound: number | null;
  met: boolean | null;
}

/** A target: `value` at least (or at most) `bound`; unknown when either figure is missing. */
function check(target: string, value: number | null, bound: number | null, atLeast: boolean): Target {
  return { target, value, bound, met: value === null || bound === null ? null : atLeast ? value >= bound : value <= bound };
}

function times(x: number | null, k: number): number | null {
  return x === null ? null : x * k;
}

/** The median of figure `key` of row `name` in this run, or null. */
function median(rows: readonly Row[], name: string | undefined, key: string): number | null {
  return name === undefined ? null : (rows.find((r) => r.name === name)?.figures[key]?.median ?? null);
}

/**
 * The targets of the faithd6 row `name`, checked against this run's medians (null: a figure is
 * missing): a native row against haproxy and against faithd6 as it was (`today`, the first
 * `--rev` row, when there is one), issue 15's; a JavaScript row against issue 5's.
 */
function targets(rows: readonly Row[], name: string, plane: Plane, today: string | undefined): Target[] {
  const m = (row: string | undefined, key: string): number | null => median(rows, row, key);
  if (plane === 'js')
    return [
      check('single-stream throughput c→s ≥ 0.45 × direct (Gbit/s)', m(name, 'up1'), times(m('direct', 'up1'), 0.45), true),
      check('connections/s ≥ 2 × socat', m(name, 'connectionRate'), times(m('socat', 'connectionRate'), 2), true),
      check('connections/s ≥ node-pipe', m(name, 'connectionRate'), m('node-pipe', 'connectionRate'), true),
      check('latency p99 ≤ node-pipe (µs)', m(name, 'latencyP99'), m('node-pipe', 'latencyP99'), false),
      check('RSS per idle connection ≤ 16 KiB', m(name, 'rssPerConnection'), 16, false),
      check('relay CPU per GB ≤ socat (s)', m(name, 'cpuPerGB'), m('socat', 'cpuPerGB'), false),
    ];
  // The better of faithd6 as it was and haproxy with splice: the bar for throughput and CPU.
  const best = (a: number | null, b: number | null, most: boolean): number | null => (a === null ? b : b === null ? a : most ? Math.max(a, b) : Math.min(a, b));
  const was = today ?? '(no --rev row)';
  return [
    check('connections/s ≥ 0.9 × haproxy', m(name, 'connectionRate'), times(m('haproxy', 'connectionRate'), 0.9), true),
    check('connections/s ≥ haproxy (stretch)', m(name, 'connectionRate'), m('haproxy', 'connectionRate'), true),
    check('relay CPU per connection ≤ 1.3 × haproxy (µs)', m(name, 'cpuPerConnection'), times(m('haproxy', 'cpuPerConnection'), 1.3), false),
    check('RSS per idle connection ≤ 4 KiB', m(name, 'rssPerConnection'), 4, false),
    check(`1 stream c→s ≥ ${was} and haproxy-splice (Gbit/s)`, m(name, 'up1'), best(m(today, 'up1'), m('haproxy-splice', 'up1'), true), true),
    check(`4 streams c→s ≥ ${was} and haproxy-splice (Gbit/s)`, m(name, 'upN'), best(m(today, 'upN'), m('haproxy-splice', 'upN'), true), true),
    check(`CPU per GB ≤ ${was} and haproxy-splice (s)`, m(name, 'cpuPerGB'), best(m(today, 'cpuPerGB'), m('haproxy-splice', 'cpuPerGB'), false), false),
    check(`latency p99 ≤ ${was} (µs)`, m(name, 'latencyP99'), m(today, 'latencyP99'), false),
  ];
}

/** A relay's row: where its clients connect, how it starts, and what its memory figure is measured on. */
interface Relay {
  readonly name: string;
  readonly port: number;
  /** The port of the fresh instances the memory figure starts. */
  readonly memoryPort: number;
  /** Idle connections for the memory figure. */
  readonly idle: number;
  readonly start: (port: number) => Promise<System>;
}

/** A faithd6 row's log, for the JSON file: how many lines it printed, and the first ones (its file read once). */
function logLines(child: Child | null | undefined): { logLines: number; firstLogLines: readonly Message[] } {
  const printed = child?.printed();
  return { logLines: printed?.count ?? 0, firstLogLines: printed?.first ?? [] };
}

async function main(): Promise<number> {
  const startedAt = new Date();
  const tmp = await mkdtemp(join(os.tmpdir(), 'faithd6-bench-'));
  const server = new Child('server', GEN, ['server', systems.SERVER4, String(systems.SERVER_PORT)]);
  /** The systems in the order they started. */
  const all: System[] = [];
  let stopping: Promise<void> | null = null;
  /** Stops everything the suite started, once; later calls wait for the same stop. */
  const stopAll = (): Promise<void> =>
    (stopping ??= (async () => {
      // In the reverse of the order they started: the first faithd6 manages the local route the
      // other relays use, so it goes last.
      for (const s of [...all].reverse()) await s.child?.stop(10_000);
      await Promise.all(liveChildren().map((child) => child.stop()));
    })());
  // After the stop: the faithd6 rows' log files in it are read for the JSON file first.
  const removeTmp = (): Promise<void> => rm(tmp, { recursive: true, force: true });
  const onSignal = (sig: NodeJS.Signals): void => {
    if (!interrupted) say(`\n${sig}: stopping what the bench started`);
    interrupted = true;
    void stopAll()
      .then(removeTmp)
      .finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    await server.next(10_000, 'server ready');
    const info = machine();
    say(
      `faithd6 bench: ${SETTINGS.rounds} rounds (memory: ${SETTINGS.idleRounds}), systems interleaved (order rotated each round); median (min–max) over the rounds`,
    );
    say(
      `machine: ${String(info.nproc)} CPUs (${String(info.cpuModel)}), Node ${process.version}, Linux ${os.release()}; open files limit ${spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim()}`,
    );
    say(
      `NOTE: the load generator and the IPv4 server (bench/gen.c: a thread per stream or client, an epoll loop per core) and the relay all share these ${String(info.nproc)} cores.`,
    );
    const [load1 = 0] = os.loadavg();
    if (load1 > 0.5)
      say(`NOTE: load average ${load1.toFixed(2)} at start: other work shares the machine, so expect noise; the ratios within this run are what to compare.`);
    say(
      `NOTE: faithd6 runs with log level "${SETTINGS.faithd6LogLevel}"${SETTINGS.faithd6LogLevel === 'warn' ? ' (no per-connection log lines; --log info measures them)' : ''}, a row per data plane and worker count (${SETTINGS.faithd6Workers.map((w) => `${systems.faithd6Name(w)}: ${w} worker${w === 1 ? '' : 's'}`).join(', ')}; a port's workers accept on one shared socket); "js" rows run dataPlane: js, "splice" the native plane moving bulk with splice(2) instead of read/write (FAITHD6_NATIVE_COPY=splice).`,
    );
    for (const rev of SETTINGS.faithd6Revisions)
      say(
        `NOTE: ${systems.faithd6RevisionName(rev.short)} is faithd6 at ${rev.full} (--rev ${rev.requested}), built in ${rev.tree}: 1 worker, the same config, not checked against the targets.`,
      );

    const level = SETTINGS.faithd6LogLevel;
    const planeExtras = (plane: Plane): systems.Faithd6Extras =>
      plane === 'js' ? { dataPlane: 'js' } : plane === 'splice' ? { dataPlane: 'native', copy: 'splice' } : {};
    const faithd6Relays = SETTINGS.faithd6Planes.flatMap((plane) =>
      (plane === 'splice' ? [1] : SETTINGS.faithd6Workers).map((workers) => {
        const name = systems.faithd6Name(workers, plane);
        const extras = planeExtras(plane);
        return {
          name,
          workers,
          plane,
          extras,
          port: faithd6Port(workers, 6000, plane),
          memoryPort: faithd6Port(workers, 7000, plane),
          idle: SETTINGS.idleConnections,
          start: (port: number) => systems.startFaithd6(port, tmp, level, workers, { name, extras }),
        };
      }),
    );
    const revisionRelays = SETTINGS.faithd6Revisions.map((rev, i) => {
      const name = systems.faithd6RevisionName(rev.short);
      return {
        name,
        rev,
        port: revisionPort(i),
        memoryPort: revisionPort(i, 7000),
        idle: SETTINGS.idleConnections,
        start: (port: number) => systems.startFaithd6(port, tmp, level, 1, { tree: rev.tree, name }),
      };
    });
    const variantRelays = (SETTINGS.faithd6Variants ? VARIANTS : []).map((v, i) => ({
      name: v.name,
      port: variantPort(i),
      memoryPort: variantPort(i, 7000),
      idle: SETTINGS.idleConnections,
      extras: v.extras(variantPort(i)),
      start: (port: number) => systems.startFaithd6(port, tmp, level, 1, { name: v.name, extras: v.extras(port) }),
    }));
    for (const v of variantRelays)
      say(
        `NOTE: ${v.name} is this tree's faithd6 with 1 worker and ${JSON.stringify(v.extras)}${v.extras.metricsListen ? ', scraped once a second all along' : ''}.`,
      );
    const relay = (name: keyof typeof PORTS, start: (port: number) => Promise<System>, idle = SETTINGS.idleConnections): Relay => ({
      name,
      port: PORTS[name],
      memoryPort: MEMORY_PORTS[name],
      idle,
      start,
    });
    const nodePipe = relay('node-pipe', (port) => systems.startNodePipe(port));
    const others = [
      relay('socat', (port) => systems.startSocat(port), Math.min(SETTINGS.idleConnections, SETTINGS.idleForking)),
      relay('haproxy', (port) => systems.startHaproxy(port, tmp, false)),
      relay('haproxy-splice', (port) => systems.startHaproxy(port, tmp, true)),
    ];
    const relays = new Map<string, Relay>([nodePipe, ...faithd6Relays, ...revisionRelays, ...variantRelays, ...others].map((r) => [r.name, r]));
    const start = async (r: Relay): Promise<System> => {
      const s = await r.start(r.port);
      all.push(s);
      return s;
    };

    // faithd6 first: the first one to start adds the local route for the prefix (route:
    // manage), which the other relays' clients need too; they use it while faithd6 idles.
    all.push(systems.direct());
    const faithd6s: System[] = [];
    for (const r of faithd6Relays) faithd6s.push(await start(r));
    const revisionSystems: System[] = [];
    for (const r of revisionRelays) revisionSystems.push(await start(r));
    const variantSystems: System[] = [];
    for (const r of variantRelays) variantSystems.push(await start(r));
    // The metrics row is scraped as Prometheus would, once a second, for the whole run.
    const scrapers = variantRelays
      .filter((r) => r.extras.metricsListen !== undefined)
      .map((r) =>
        setInterval(() => {
          fetch(`http://${r.extras.metricsListen as string}/metrics`)
            .then((res) => res.text())
            .catch(() => undefined);
        }, 1000),
      );
    for (const s of [...faithd6s, ...revisionSystems, ...variantSystems]) if (s.unavailable !== null) say(`${s.name} ${s.unavailable}`);
    if ([...faithd6s, ...revisionSystems].every((s) => s.unavailable !== null)) {
      say(`adding the local route for ${systems.PREFIX} so that the other rows still run`);
      spawnSync('ip', ['-6', 'route', 'replace', 'local', systems.PREFIX, 'dev', 'lo']);
    }
    const nodePipeSystem = await start(nodePipe);
    const otherSystems: System[] = [];
    for (const r of others) otherSystems.push(await start(r));
    /** The rows, in the tables' order. */
    const shown = [all[0]!, nodePipeSystem, ...faithd6s, ...revisionSystems, ...variantSystems, ...otherSystems];
    const running = shown.filter((s) => s.unavailable === null);
    for (const s of [nodePipeSystem, ...otherSystems]) if (s.unavailable !== null) say(`${s.name}: ${s.unavailable}`);
    say(`systems: ${running.map((s) => `${s.name} [${s.host}]:${s.port}`).join(', ')}`);

    const runs = new Map<string, Runs>(
      shown.map((s) => [s.name, { bulk: { up1: [], down1: [], upN: [], downN: [] }, latency: [], churn: [], idle: [], iperf3: [] }]),
    );
    const nameWidth = Math.max(14, ...shown.map((s) => s.name.length));
    const label = (round: number, what: string, s: System): string => `round ${round}/${SETTINGS.rounds}  ${what.padEnd(26)} ${s.name.padEnd(nameWidth)}`;

    say('warm-up (not counted): 64 MiB, 2,000 round trips and 1 s of connections through each system');
    for (const s of running) {
      await attempt(0, () => bulk(s, 0, 'up1', 64 * 1024 * 1024));
      await attempt(0, () => latency(s, 0, 2000, 1000));
      await attempt(0, () => churn(s, 0, 1000));
    }

    for (let round = 1; round <= SETTINGS.rounds; round++) {
      const order = rotate(running, round - 1);
      for (const kind of Object.keys(BULK_KINDS) as BulkKind[]) {
        for (const s of order) {
          const run = await attempt(round, () => bulk(s, round, kind));
          runs.get(s.name)!.bulk[kind].push(run);
          say(
            `${label(round, BULK_NAMES[kind], s)} ${ok(run) ? `${run.gbps.toFixed(2)} Gbit/s (${(run.received / 2 ** 20).toFixed(0)} MiB in ${run.ms.toFixed(0)} ms${run.relayCpuSeconds === null ? '' : `, relay CPU ${run.relayCpuSeconds.toFixed(2)} s`})` : `ERROR ${run.error}`}`,
          );
        }
      }
      for (const s of order) {
        const run = await attempt(round, () => latency(s, round));
        runs.get(s.name)!.latency.push(run);
        say(
          `${label(round, 'latency', s)} ${ok(run) ? `p50 ${run.p50.toFixed(0)} µs, p99 ${run.p99.toFixed(0)} µs, max ${run.max.toFixed(0)} µs (${run.count} round trips)` : `ERROR ${run.error}`}`,
        );
      }
      for (const s of order) {
        const run = await attempt(round, () => churn(s, round));
        runs.get(s.name)!.churn.push(run);
        say(
          `${label(round, 'connections/s', s)} ${ok(run) ? `${run.rate.toFixed(0)}/s (${run.connections} in ${run.ms.toFixed(0)} ms, ${run.errors} errors)` : `ERROR ${run.error}`}`,
        );
      }
      if (round > SETTINGS.idleRounds) continue;
      for (const s of order) {
        const r = relays.get(s.name);
        if (r === undefined) continue; // direct has no relay process
        const run = await attempt(round, () => idle(r.start, r.memoryPort, round, r.idle));
        runs.get(s.name)!.idle.push(run);
        say(
          `${label(round, 'idle memory', s)} ${ok(run) ? `${run.rssKiBPerConnection.toFixed(1)} KiB/conn RSS (${run.before.rssKiB} → ${run.after.rssKiB} KiB over ${run.after.processes} processes, ${run.open} connections), PSS ${run.pssKiBPerConnection.toFixed(1)} KiB/conn` : `ERROR ${run.error}`}`,
        );
      }
    }

    // iperf3 last: its server takes the C server's place, which nothing needs after the rounds.
    const iperf3Seconds = Number(opts['iperf3-seconds']);
    const iperf3Ran = iperf3Seconds > 0 && systems.iperf3Installed();
    if (iperf3Ran) {
      await withIperf3Server(server, async () => {
        for (const s of running) {
          for (const n of [1, SETTINGS.parallelStreams]) {
            const run = await attempt(0, () => iperf3(s.host, s.port, n, iperf3Seconds));
            runs.get(s.name)!.iperf3.push(run);
            say(
              `${label(0, `iperf3 ${n} stream${n === 1 ? '' : 's'} c→s`, s)} ${ok(run) ? `${run.gbps.toFixed(2)} Gbit/s${run.retransmits === null ? '' : `, ${run.retransmits} retransmits`}` : `ERROR ${run.error}`}`,
            );
          }
        }
      });
    } else if (iperf3Seconds > 0) say('iperf3 not installed: no iperf3 figures');

    const rows: Row[] = shown.map((s) => ({ name: s.name, unavailable: s.unavailable, figures: figures(runs.get(s.name)!) }));
    for (const t of TABLES) {
      if (!iperf3Ran && t.columns.some((c) => c.key.startsWith('iperf3'))) continue;
      say('');
      say(t.title);
      for (const line of table(t.columns, rows)) say(line);
    }
    say('');
    say("median (min–max) over the rounds; ratio = median / direct's median (for latency, higher is worse).");
    say(
      `throughput: ${opts['bulk-mib']} MiB in all or ${SETTINGS.bulkMaxMs / 1000} s per run; latency: 64 B request/response on one kept connection, ${SETTINGS.latencyCount} round trips or ${SETTINGS.latencyMaxMs / 1000} s; connections/s: ${SETTINGS.churnClients} clients, connect / 64 B / 64 B echo / close for ${SETTINGS.churnMs / 1000} s; memory: ${SETTINGS.idleConnections} idle relayed connections (socat, a process per connection: ${Math.min(SETTINGS.idleConnections, SETTINGS.idleForking)}) on a fresh instance, above its RSS after 100 connections came and went; CPU: user + system of the relay's processes during the single-stream c→s runs.`,
    );

    const today = revisionRelays[0]?.name;
    const goals = new Map(faithd6Relays.map((r) => [r.name, targets(rows, r.name, r.plane, today)]));
    for (const r of faithd6Relays) {
      say('');
      say(`${r.name} (${r.plane} data plane, ${r.workers} worker${r.workers === 1 ? '' : 's'}) against the performance targets (this run's medians):`);
      for (const g of goals.get(r.name)!) {
        const verdict = g.met === null ? 'n/a ' : g.met ? 'MET ' : 'MISS';
        say(`  ${verdict}  ${g.target}: ${r.name} ${g.value?.toFixed(2) ?? '—'}, bound ${g.bound?.toFixed(2) ?? '—'}`);
      }
    }

    // The bench is only meaningful if the box is faster than the relays it measures: a relay
    // within 80% of direct suggests that the generator or the server set the pace, not the
    // relay (they share the cores with it).
    const CLEARLY_FASTER = 0.8;
    const directRow = rows.find((r) => r.name === 'direct')!;
    const warnings: string[] = [];
    const generatorBound: string[] = [];
    for (const key of ['up1', 'down1', 'upN', 'downN', 'connectionRate'] as const) {
      const d = directRow.figures[key];
      for (const r of rows) {
        const f = r.figures[key];
        if (r.name === 'direct' || !f) continue;
        if (!d) warnings.push(`no ${key} figure for direct: ratios to direct are missing`);
        else if (f.median >= CLEARLY_FASTER * d.median) {
          generatorBound.push(`${r.name} ${key}`);
          warnings.push(
            `direct is not clearly faster than ${r.name} on ${key} (${f.median.toFixed(2)} vs ${d.median.toFixed(2)}): ratio ≥ ${CLEARLY_FASTER}: the load generator or the server may be the bottleneck`,
          );
        }
      }
    }
    say(
      generatorBound.length === 0
        ? `load generator: direct is clearly faster (> 1/${CLEARLY_FASTER} ×) than every relay on every throughput and connection figure, so the generator and the server are not what limits the relays.`
        : `load generator: direct is within ${CLEARLY_FASTER} × of ${generatorBound.join(', ')}: there the generator or the server, sharing the cores with the relay, may set the pace.`,
    );
    const errors = [...runs].flatMap(([name, r]) =>
      [...Object.values(r.bulk).flat(), ...r.latency, ...r.churn, ...r.idle, ...r.iperf3]
        .filter((x): x is Failure => !ok(x))
        .map((x) => `${name} round ${x.round}: ${x.error}`),
    );
    if (errors.length > 0) warnings.push(`${errors.length} runs failed: ${errors.slice(0, 5).join('; ')}`);
    for (const w of [...new Set(warnings)]) say(`WARNING: ${w}`);

    for (const timer of scrapers) clearInterval(timer);
    await stopAll();
    for (const s of [...faithd6s, ...revisionSystems, ...variantSystems]) {
      const printed = s.child?.printed().count ?? 0;
      if (printed > 0) say(`${s.name} printed ${printed} log lines at level ${level} (first ones in the JSON file)`);
      if (s.child?.exit && s.child.exit.code !== 0) say(`WARNING: ${s.name} exited with ${JSON.stringify(s.child.exit)}`);
    }

    const result = {
      timestamp: startedAt.toISOString(),
      durationSeconds: (Date.now() - startedAt.getTime()) / 1000,
      machine: { ...info, loadAverageAtEnd: os.loadavg() },
      settings: SETTINGS,
      iperf3: iperf3Ran ? { seconds: iperf3Seconds, streams: SETTINGS.parallelStreams } : null,
      addresses: { server4: systems.SERVER4, serverPort: systems.SERVER_PORT, prefix: systems.PREFIX, translated: systems.TRANSLATED },
      systems: Object.fromEntries(
        shown.map((s) => [
          s.name,
          {
            available: s.unavailable === null,
            unavailable: s.unavailable,
            host: s.host,
            port: s.port,
            summary: rows.find((r) => r.name === s.name)!.figures,
            runs: runs.get(s.name),
          },
        ]),
      ),
      faithd6: {
        // Which code was measured (read-only git; "-dirty" when the tree has local changes).
        revision: spawnSync('git', ['-C', systems.ROOT, 'describe', '--always', '--dirty'], { encoding: 'utf8' }).stdout?.trim() || null,
        // A row per worker count, each with the config it ran (the memory figure's fresh
        // instances run the same one on memoryPort).
        rows: faithd6Relays.map((r, i) => {
          const child = faithd6s[i]!.child;
          return {
            name: r.name,
            workers: r.workers,
            plane: r.plane,
            port: r.port,
            memoryPort: r.memoryPort,
            config: systems.faithd6Config(tmp, r.port, level, r.workers, r.extras),
            targets: goals.get(r.name),
            exit: child?.exit ?? null,
            ...logLines(child),
          };
        }),
        // faithd6 at other revisions (`--rev`): a row each, one worker, the current row's config
        // on its own ports, run from its own tree (removed after the run); no target checks.
        revisions: revisionRelays.map((r, i) => {
          const child = revisionSystems[i]!.child;
          return {
            name: r.name,
            requested: r.rev.requested,
            revision: r.rev.full,
            shortRevision: r.rev.short,
            tree: r.rev.tree,
            workers: 1,
            port: r.port,
            memoryPort: r.memoryPort,
            config: systems.faithd6Config(tmp, r.port, level, 1),
            exit: child?.exit ?? null,
            ...logLines(child),
          };
        }),
      },
      haproxyConfig: systems.haproxyConfig(PORTS['haproxy-splice'], true),
      warnings,
    };
    const dir = join(systems.ROOT, 'bench', 'results');
    await mkdir(dir, { recursive: true });
    const file = join(dir, `bench-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
    await writeFile(file, JSON.stringify(result, null, 2) + '\n');
    say(`raw numbers: ${file}`);
    return 0;
  } finally {
    await stopAll();
    await removeTmp();
  }
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    if (interrupted) return; // the signal handler exits once everything is stopped
    process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
