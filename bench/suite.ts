// The measurements, run inside the bench's network namespace (bench/run.ts creates it and
// starts this file there): starts the IPv4 server and the systems, runs every figure for
// every system, round after round with the order of the systems rotated each round, and
// prints the table and writes the raw numbers to bench/results/.
import os from 'node:os';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { Child, liveChildren, treeCpuSeconds, treeMemory, type Memory, type Message } from './proc.js';
import { spread, table, type Column, type Row, type Spread } from './report.js';
import * as systems from './systems.js';
import type { System } from './systems.js';

const { values: opts } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    'bulk-mib': { type: 'string', default: '512' },
    'bulk-max-ms': { type: 'string', default: '5000' },
    'churn-ms': { type: 'string', default: '3000' },
    clients: { type: 'string', default: '50' },
    'churn-procs': { type: 'string', default: '2' },
    idle: { type: 'string', default: '1000' },
    log: { type: 'string', default: 'warn' },
  },
});
const SETTINGS = Object.freeze({
  rounds: Number(opts.rounds),
  bulkBytes: Number(opts['bulk-mib']) * 1024 * 1024,
  bulkMaxMs: Number(opts['bulk-max-ms']),
  churnMs: Number(opts['churn-ms']),
  churnClients: Number(opts.clients),
  churnProcesses: Number(opts['churn-procs']),
  idleConnections: Number(opts.idle),
  faithd6LogLevel: opts.log ?? 'warn',
  /** Time the relay gets after the last idle connection opened, before its memory is read. */
  idleSettleMs: 1000,
});
const PORTS = { 'node-pipe': 6001, faithd6: 6002, socat: 6003 } as const;
/** The fresh instances the memory figure is measured on. */
const MEMORY_PORTS = { 'node-pipe': 7001, faithd6: 7002, socat: 7003 } as const;
type RelayName = keyof typeof PORTS;
const LOAD = join(systems.BENCH_DIST, 'load.js');

type Failure = { round: number; error: string };
interface BulkRun {
  round: number;
  gbps: number;
  sent: number;
  received: number;
  ms: number;
  /** CPU seconds the relay's processes used during the run (null for direct). */
  relayCpuSeconds: number | null;
  relayCpuSecondsPerGB: number | null;
}
interface ChurnRun {
  round: number;
  rate: number;
  connections: number;
  errors: number;
  ms: number;
  perProcess: Message[];
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
  throughput: (BulkRun | Failure)[];
  churn: (ChurnRun | Failure)[];
  idle: (IdleRun | Failure)[];
}

function say(text: string): void {
  process.stdout.write(text + '\n');
}

function ok<T extends object>(run: T | Failure): run is T {
  return !('error' in run);
}

async function load(label: string, args: string[]): Promise<Child> {
  return new Child(label, process.execPath, [LOAD, ...args]);
}

async function bulk(system: System, round: number, bytes = SETTINGS.bulkBytes): Promise<BulkRun> {
  const root = system.child?.pid;
  const cpu0 = root === undefined ? 0 : treeCpuSeconds(root);
  const sender = await load('bulk sender', ['bulk', system.host, String(system.port), String(bytes), String(SETTINGS.bulkMaxMs)]);
  const result = await sender.next(SETTINGS.bulkMaxMs + 30_000, 'bulk result');
  await sender.exited;
  const cpu = root === undefined ? null : treeCpuSeconds(root) - cpu0;
  if (typeof result.error === 'string') throw new Error(result.error);
  const received = Number(result.received);
  const ms = Number(result.ms);
  if (received !== Number(result.sent)) throw new Error(`the server received ${received} of ${String(result.sent)} bytes`);
  return {
    round,
    gbps: (received * 8) / (ms * 1e6),
    sent: Number(result.sent),
    received,
    ms,
    relayCpuSeconds: cpu,
    relayCpuSecondsPerGB: cpu === null ? null : cpu / (received / 1e9),
  };
}

async function churn(system: System, round: number, ms = SETTINGS.churnMs): Promise<ChurnRun> {
  const procs = SETTINGS.churnProcesses;
  const clients = Array.from({ length: procs }, (_, i) => Math.floor(SETTINGS.churnClients / procs) + (i < SETTINGS.churnClients % procs ? 1 : 0));
  const generators = await Promise.all(clients.map((n, i) => load(`churn ${i}`, ['churn', system.host, String(system.port), String(n), String(ms)])));
  try {
    await Promise.all(generators.map((g) => g.next(10_000, 'ready')));
    for (const g of generators) g.send('go'); // all start together
    const results = await Promise.all(generators.map((g) => g.next(ms + 30_000, 'churn result')));
    const failed = results.find((r) => typeof r.error === 'string');
    if (failed) throw new Error(String(failed.error));
    const connections = results.reduce((sum, r) => sum + Number(r.connections), 0);
    const errors = results.reduce((sum, r) => sum + Number(r.errors), 0);
    const elapsed = Math.max(...results.map((r) => Number(r.ms)));
    return { round, rate: (connections * 1000) / elapsed, connections, errors, ms: elapsed, perProcess: results };
  } finally {
    await Promise.all(generators.map((g) => g.stop()));
  }
}

/** Open `count` idle connections through `system`; resolves once they are open, with their holder. */
async function openIdle(system: System, count: number): Promise<{ holder: Child; open: number; errors: number }> {
  const holder = await load('idle holder', ['idle', system.host, String(system.port), String(count)]);
  try {
    const opened = await holder.next(60_000, 'idle connections');
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
 * than 1,000 connections take. The fresh one first relays (and closes) 100 connections, so
 * that what is allocated once, on first use, is in the baseline.
 */
async function idle(start: (port: number) => Promise<System>, port: number, round: number): Promise<IdleRun> {
  const fresh = await start(port);
  if (fresh.unavailable !== null || fresh.child === null) throw new Error(`fresh instance ${fresh.unavailable ?? 'has no process'}`);
  const root = fresh.child.pid;
  try {
    await closeIdle((await openIdle(fresh, 100)).holder);
    await sleep(SETTINGS.idleSettleMs);
    const before = treeMemory(root);
    const { holder, open, errors } = await openIdle(fresh, SETTINGS.idleConnections);
    try {
      await sleep(SETTINGS.idleSettleMs);
      const after = treeMemory(root);
      if (open === 0) throw new Error(`no connection opened (${errors} errors)`);
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

const COLUMNS: readonly Column[] = [
  { key: 'throughput', title: 'throughput, Gbit/s', digits: 2, ratio: true },
  { key: 'connectionRate', title: 'connections/s', digits: 0, ratio: true },
  { key: 'rssPerConnection', title: 'RSS, KiB per idle conn', digits: 1, ratio: false },
  { key: 'cpuPerGB', title: 'relay CPU, s per GB', digits: 2, ratio: false },
];

function figures(runs: Runs): Record<string, Spread | null> {
  const bulkRuns = runs.throughput.filter(ok<BulkRun>);
  return {
    throughput: spread(bulkRuns.map((r) => r.gbps)),
    connectionRate: spread(runs.churn.filter(ok<ChurnRun>).map((r) => r.rate)),
    rssPerConnection: spread(runs.idle.filter(ok<IdleRun>).map((r) => r.rssKiBPerConnection)),
    pssPerConnection: spread(runs.idle.filter(ok<IdleRun>).map((r) => r.pssKiBPerConnection)),
    cpuPerGB: spread(bulkRuns.map((r) => r.relayCpuSecondsPerGB)),
  };
}

async function main(): Promise<number> {
  const startedAt = new Date();
  const tmp = await mkdtemp(join(os.tmpdir(), 'faithd6-bench-'));
  const server = new Child('server', process.execPath, [join(systems.BENCH_DIST, 'server.js'), systems.SERVER4, String(systems.SERVER_PORT)]);
  const all: System[] = [];
  let stopping: Promise<void> | null = null;
  /** Stops everything the suite started, once; later calls wait for the same stop. */
  const stopAll = (): Promise<void> =>
    (stopping ??= (async () => {
      // faithd6 last: the local route the other relays use is the one it manages.
      const order = [...all].sort((a, b) => Number(a.name === 'faithd6') - Number(b.name === 'faithd6'));
      for (const s of order) await s.child?.stop(10_000);
      await Promise.all(liveChildren().map((child) => child.stop()));
      await rm(tmp, { recursive: true, force: true });
    })());
  const onSignal = (sig: NodeJS.Signals): void => {
    if (!interrupted) say(`\n${sig}: stopping what the bench started`);
    interrupted = true;
    void stopAll().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    await server.next(10_000, 'server ready');
    const info = machine();
    say(`faithd6 bench: ${SETTINGS.rounds} rounds, systems interleaved (order rotated each round); median (min–max) over the rounds`);
    say(`machine: ${String(info.nproc)} CPUs (${String(info.cpuModel)}), Node ${process.version}, Linux ${os.release()}`);
    say(`NOTE: the load generator (separate node processes), the IPv4 server and the relay all share these ${String(info.nproc)} cores.`);
    const [load1 = 0] = os.loadavg();
    if (load1 > 0.5) say(`NOTE: load average ${load1.toFixed(2)} at start: other work shares the machine, so expect noise; the ratios within this run are what to compare.`);
    say(`NOTE: faithd6 runs with log level "${SETTINGS.faithd6LogLevel}"${SETTINGS.faithd6LogLevel === 'warn' ? ' (no per-connection log lines; --log info measures them)' : ''}.`);

    // faithd6 first: it adds the local route for the prefix (route: manage), which the other
    // relays' clients need too; they use it while faithd6 idles.
    all.push(systems.direct());
    const faithd6 = await systems.startFaithd6(PORTS.faithd6, tmp, SETTINGS.faithd6LogLevel);
    if (faithd6.unavailable !== null) {
      say(`faithd6 ${faithd6.unavailable}`);
      say(`adding the local route for ${systems.PREFIX} so that the other rows still run`);
      spawnSync('ip', ['-6', 'route', 'replace', 'local', systems.PREFIX, 'dev', 'lo']);
    }
    all.push(await systems.startNodePipe(PORTS['node-pipe']), faithd6, await systems.startSocat(PORTS.socat));
    const running = all.filter((s) => s.unavailable === null);
    for (const s of all) if (s.unavailable !== null && s.name !== 'faithd6') say(`${s.name}: ${s.unavailable}`);
    say(`systems: ${running.map((s) => `${s.name} [${s.host}]:${s.port}`).join(', ')}`);

    const starters: Record<RelayName, (port: number) => Promise<System>> = {
      'node-pipe': (port) => systems.startNodePipe(port),
      faithd6: (port) => systems.startFaithd6(port, tmp, SETTINGS.faithd6LogLevel),
      socat: (port) => systems.startSocat(port),
    };
    const runs = new Map<string, Runs>(all.map((s) => [s.name, { throughput: [], churn: [], idle: [] }]));

    say('warm-up (not counted): 64 MiB and 1 s of connections through each system');
    for (const s of running) {
      await attempt(0, () => bulk(s, 0, 64 * 1024 * 1024));
      await attempt(0, () => churn(s, 0, 1000));
    }

    for (let round = 1; round <= SETTINGS.rounds; round++) {
      const order = rotate(running, round - 1);
      for (const s of order) {
        const run = await attempt(round, () => bulk(s, round));
        runs.get(s.name)!.throughput.push(run);
        say(`round ${round}/${SETTINGS.rounds}  throughput     ${s.name.padEnd(10)} ${ok(run) ? `${run.gbps.toFixed(2)} Gbit/s (${(run.received / 2 ** 20).toFixed(0)} MiB in ${run.ms.toFixed(0)} ms${run.relayCpuSeconds === null ? '' : `, relay CPU ${run.relayCpuSeconds.toFixed(2)} s`})` : `ERROR ${run.error}`}`);
      }
      for (const s of order) {
        const run = await attempt(round, () => churn(s, round));
        runs.get(s.name)!.churn.push(run);
        say(`round ${round}/${SETTINGS.rounds}  connections/s  ${s.name.padEnd(10)} ${ok(run) ? `${run.rate.toFixed(0)}/s (${run.connections} in ${run.ms.toFixed(0)} ms, ${run.errors} errors)` : `ERROR ${run.error}`}`);
      }
      for (const s of order) {
        if (s.child === null) continue; // direct has no relay process
        const name = s.name as RelayName;
        const run = await attempt(round, () => idle(starters[name], MEMORY_PORTS[name], round));
        runs.get(s.name)!.idle.push(run);
        say(`round ${round}/${SETTINGS.rounds}  idle memory    ${s.name.padEnd(10)} ${ok(run) ? `${run.rssKiBPerConnection.toFixed(1)} KiB/conn RSS (${run.before.rssKiB} → ${run.after.rssKiB} KiB over ${run.after.processes} processes, ${run.open} connections), PSS ${run.pssKiBPerConnection.toFixed(1)} KiB/conn` : `ERROR ${run.error}`}`);
      }
    }

    const rows: Row[] = all.map((s) => ({ name: s.name, unavailable: s.unavailable, figures: figures(runs.get(s.name)!) }));
    say('');
    for (const line of table(COLUMNS, rows)) say(line);
    say('ratio = median / direct\'s median. Memory and CPU are the relay\'s processes (all faithd6 processes summed); direct has none.');
    say(`throughput: one stream client→server, ${opts['bulk-mib']} MiB or ${SETTINGS.bulkMaxMs / 1000} s; connections/s: ${SETTINGS.churnClients} clients in ${SETTINGS.churnProcesses} processes, connect / 64 B / 64 B echo / close for ${SETTINGS.churnMs / 1000} s; memory: ${SETTINGS.idleConnections} idle relayed connections on a fresh instance, above its RSS after 100 connections came and went.`);

    // The bench is only meaningful if the box is faster than the relays it measures: a relay
    // within 80% of direct suggests the generator or the server set the pace, not the relay.
    const CLEARLY_FASTER = 0.8;
    const directRow = rows.find((r) => r.name === 'direct')!;
    const warnings: string[] = [];
    for (const key of ['throughput', 'connectionRate'] as const) {
      const d = directRow.figures[key];
      for (const r of rows) {
        const f = r.figures[key];
        if (r.name === 'direct' || !f) continue;
        if (!d) warnings.push(`no ${key} figure for direct: ratios to direct are missing`);
        else if (f.median >= CLEARLY_FASTER * d.median) {
          warnings.push(`direct is not clearly faster than ${r.name} on ${key} (${f.median.toFixed(2)} vs ${d.median.toFixed(2)}): ratio ≥ ${CLEARLY_FASTER}: the load generator or the server may be the bottleneck`);
        }
      }
    }
    const errors = [...runs].flatMap(([name, r]) => [...r.throughput, ...r.churn, ...r.idle].filter((x): x is Failure => !ok(x)).map((x) => `${name} round ${x.round}: ${x.error}`));
    if (errors.length > 0) warnings.push(`${errors.length} runs failed: ${errors.slice(0, 5).join('; ')}`);
    for (const w of [...new Set(warnings)]) say(`WARNING: ${w}`);

    await stopAll();
    const faithd6Exit = faithd6.child?.exit ?? null;
    const faithd6Lines = faithd6.child?.lines ?? [];
    if (faithd6Lines.length > 0) say(`faithd6 printed ${faithd6Lines.length} log lines at level ${SETTINGS.faithd6LogLevel} (first ones in the JSON file)`);
    if (faithd6Exit && faithd6Exit.code !== 0) say(`WARNING: faithd6 exited with ${JSON.stringify(faithd6Exit)}`);

    const result = {
      timestamp: startedAt.toISOString(),
      durationSeconds: (Date.now() - startedAt.getTime()) / 1000,
      machine: { ...info, loadAverageAtEnd: os.loadavg() },
      settings: SETTINGS,
      addresses: { server4: systems.SERVER4, serverPort: systems.SERVER_PORT, prefix: systems.PREFIX, translated: systems.TRANSLATED },
      systems: Object.fromEntries(
        all.map((s) => [
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
        config: systems.faithd6Config(PORTS.faithd6, SETTINGS.faithd6LogLevel, join(tmp, `run-${PORTS.faithd6}`)),
        exit: faithd6Exit,
        logLines: faithd6Lines.length,
        firstLogLines: faithd6Lines.slice(0, 20),
      },
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
