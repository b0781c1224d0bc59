// The systems the bench compares, each reached by the clients at one address and port:
// direct (the IPv4 server itself), node-pipe (bench/node-pipe.ts), faithd6 (its real CLI on a
// generated config, a row per worker count, and a row per other revision asked for), and socat
// and haproxy when they are installed.
// All run at once, each on its own port; a relay that is not being measured is idle, so the
// measurements can interleave.
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Child } from './proc.js';

/** The repository root (this file runs as dist/bench/systems.js). */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BENCH_DIST = fileURLToPath(new URL('./', import.meta.url));

/** Benchmarking addresses (RFC 2544) and the local-use translation prefix (RFC 8215). */
export const SERVER4 = '198.18.0.1';
export const SERVER_PORT = 5000;
export const PREFIX = '64:ff9b:1::/96';
/** SERVER4 under PREFIX: what the clients of every relay dial. */
export const TRANSLATED = '64:ff9b:1::c612:1';
/** A second address of the bench's host: the `source` of the faithd6 +source row. */
export const SOURCE4 = '198.18.0.9';

/**
 * What a faithd6 row adds to the config: the data plane (native unless it says js), how the
 * native plane moves bytes (FAITHD6_NATIVE_COPY), metrics, a PROXY header, a source address.
 */
export interface Faithd6Extras {
  readonly dataPlane?: 'native' | 'js';
  readonly copy?: 'rw' | 'splice';
  readonly metricsListen?: string;
  readonly proxyProtocol?: 'v1' | 'v2';
  readonly source?: string;
}

export interface System {
  readonly name: string;
  /** Where the clients connect. */
  readonly host: string;
  readonly port: number;
  /** The relay's process (its descendants count too); null for direct and unavailable ones. */
  readonly child: Child | null;
  /** Why there are no figures for it ("not installed", "failed: …"), or null when it runs. */
  readonly unavailable: string | null;
}

/** A 64-byte exchange through `host`:`port`, retried until `timeout` ms: the system works end to end. */
export async function probe(host: string, port: number, timeout: number): Promise<void> {
  const deadline = Date.now() + timeout;
  let last = 'no attempt';
  while (Date.now() < deadline) {
    try {
      await new Promise<void>((resolve, reject) => {
        const socket = net.connect({ host, port });
        const timer = setTimeout(() => socket.destroy(new Error('no echo within 2 s')), 2000);
        let received = 0;
        socket.on('connect', () => socket.end(Buffer.alloc(64, 0x45)));
        socket.on('data', (chunk: Buffer) => (received += chunk.length));
        socket.on('error', reject);
        socket.on('close', () => {
          clearTimeout(timer);
          if (received === 64) resolve();
          else reject(new Error(`echoed ${received} of 64 bytes`));
        });
      });
      return;
    } catch (err) {
      last = (err as Error).message;
      await sleep(100);
    }
  }
  throw new Error(`[${host}]:${port} does not relay to the server within ${timeout} ms: ${last}`);
}

async function started(name: string, child: Child, host: string, port: number): Promise<System> {
  try {
    await Promise.race([
      probe(host, port, 15_000),
      child.exited.then((exit) => {
        throw new Error(`exited ${JSON.stringify(exit)}${child.stderr ? `: ${child.stderr.trim().slice(-1000)}` : ''}`);
      }),
    ]);
    return { name, host, port, child, unavailable: null };
  } catch (err) {
    await child.stop();
    // One line: it is shown across a table row (haproxy says why in its last ALERT line).
    const message = (err as Error).message
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('[NOTICE]'));
    return { name, host, port, child: null, unavailable: `failed: ${message.join(' / ').slice(0, 300)}` };
  }
}

export function direct(): System {
  return { name: 'direct', host: SERVER4, port: SERVER_PORT, child: null, unavailable: null };
}

export function startNodePipe(port: number): Promise<System> {
  const child = new Child('node-pipe', process.execPath, [join(BENCH_DIST, 'node-pipe.js'), String(port), String(SERVER_PORT)]);
  return started('node-pipe', child, TRANSLATED, port);
}

/**
 * faithd6's row name for a port with `workers` workers on a data plane: `faithd6`, `faithd6 ×2`
 * (native, the default), `faithd6 js`, `faithd6 js ×2`, `faithd6 splice` (native, splice instead of read/write).
 */
export function faithd6Name(workers: number, plane: 'native' | 'js' | 'splice' = 'native'): string {
  const base = plane === 'native' ? 'faithd6' : `faithd6 ${plane}`;
  return workers === 1 ? base : `${base} ×${workers}`;
}

/** The row of faithd6 as built at another revision (`--rev`): `faithd6 @dcba076`. */
export function faithd6RevisionName(shortRevision: string): string {
  return `faithd6 @${shortRevision}`;
}

/**
 * The config the bench runs faithd6 with on `port`: `workers` workers (they accept on one
 * shared listening socket), limits out of the way, log level `level`, and a runtime directory
 * (pidfile, control socket) of its own under `dir`, so that it never meets another faithd6 on
 * this host: the other rows' instances, nor the fresh instance the memory figure uses.
 */
export function faithd6Config(dir: string, port: number, level: string, workers: number, extras: Faithd6Extras = {}): string {
  const runtimeDirectory = join(dir, `run-${port}`);
  return [
    '# Generated by npm run bench.',
    'prefixes:',
    `  - '${PREFIX}'`,
    'route: manage',
    'services:',
    `  - port: ${port}`,
    `    backendPort: ${SERVER_PORT}`,
    `    workers: ${workers}`,
    ...(extras.proxyProtocol === undefined ? [] : [`    proxyProtocol: ${extras.proxyProtocol}`]),
    ...(extras.source === undefined ? [] : [`source: ${extras.source}`]),
    ...(extras.dataPlane === undefined ? [] : [`dataPlane: ${extras.dataPlane}`]),
    ...(extras.metricsListen === undefined ? [] : ['metrics:', `  listen: '${extras.metricsListen}'`]),
    'rules:',
    '  - action: permit',
    `    to: ${SERVER4}/32`,
    `    ports: [${port}]`,
    // The limits are checked on every connection, as in production, but set above what the
    // bench opens (5,000 idle connections and 50-way churn, all from one source), so that
    // none of them refuses a connection the other relays would take.
    'limits:',
    '  connectionsPerWorker: 100000',
    '  connectionsPerSource: 100000',
    '  connectionsPerBackend: 100000',
    '  pendingConnects: 100000',
    '  pendingConnectsPerSource: 100000',
    '  newConnectionsPerSecond: 0',
    'timeouts:',
    '  drain: 2s',
    'log:',
    `  level: ${level}`,
    `runtimeDirectory: ${runtimeDirectory}`,
    '',
  ].join('\n');
}

/**
 * faithd6 through its CLI (`bin/faithd6 run -c FILE`), on `faithd6Config(dir, …)`; it adds
 * the local route for PREFIX, or leaves it alone when another instance already did (and then
 * does not remove it either). `tree` is the compiled checkout whose bin/faithd6 runs: this
 * repository, or another revision's worktree (then named `name`).
 */
export async function startFaithd6(
  port: number,
  dir: string,
  level: string,
  workers: number,
  { tree = ROOT, name = faithd6Name(workers), extras = {} }: { tree?: string; name?: string; extras?: Faithd6Extras } = {},
): Promise<System> {
  const file = join(dir, `faithd6-${port}.yaml`);
  await writeFile(file, faithd6Config(dir, port, level, workers, extras));
  const env: Record<string, string> = extras.copy === undefined ? {} : { FAITHD6_NATIVE_COPY: extras.copy };
  // Its log lines go to a file, as they go to journald: read by another process, later.
  const child = new Child(name, process.execPath, [join(tree, 'bin', 'faithd6'), 'run', '-c', file], env, join(dir, `faithd6-${port}.log`));
  return started(name, child, TRANSLATED, port);
}

export function socatInstalled(): boolean {
  return spawnSync('socat', ['-V'], { stdio: 'ignore' }).error === undefined;
}

/** socat with a fork per connection; -t 5 so a half-close is not cut after socat's default 0.5 s. */
export function startSocat(port: number): Promise<System> {
  if (!socatInstalled()) return Promise.resolve({ name: 'socat', host: TRANSLATED, port, child: null, unavailable: 'not installed' });
  const child = new Child('socat', 'socat', ['-t', '5', `TCP6-LISTEN:${port},fork,reuseaddr,ipv6only=1,backlog=511`, `TCP4:${SERVER4}:${SERVER_PORT}`]);
  return started('socat', child, TRANSLATED, port);
}

/**
 * haproxy refuses to start unless it can have 2 descriptors per connection (plus a few): the
 * most connections the hard open-files limit allows, and no more than the bench opens.
 */
function haproxyMaxconn(): number {
  const hard = Number(spawnSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout?.trim());
  const room = hard - 200 - 2 * HAPROXY_MAXPIPES;
  return Number.isFinite(room) && room > 0 ? Math.max(100, Math.min(20_000, Math.floor(room / 2))) : 20_000;
}
/** Splice needs a pipe (2 descriptors) per spliced connection; haproxy's default, maxconn/4, would not fit. */
const HAPROXY_MAXPIPES = 500;

export function iperf3Installed(): boolean {
  return spawnSync('iperf3', ['-v'], { stdio: 'ignore' }).error === undefined;
}

export function haproxyInstalled(): boolean {
  return spawnSync('haproxy', ['-v'], { stdio: 'ignore' }).error === undefined;
}

/**
 * haproxy's config for the bench: TCP mode, one frontend on [::]:PORT (IPv6 only) to the
 * IPv4 server; haproxy's defaults otherwise (one thread per CPU). With `splice`, the kernel
 * moves the bytes between the sockets (`option splice-auto`) when haproxy sees it pays.
 */
export function haproxyConfig(port: number, splice: boolean): string {
  const maxconn = haproxyMaxconn();
  return [
    '# Generated by npm run bench.',
    'global',
    `  maxconn ${maxconn}`,
    `  maxpipes ${HAPROXY_MAXPIPES}`,
    '  log stderr format short local0 err',
    'defaults',
    '  mode tcp',
    '  log global',
    '  timeout connect 5s',
    '  timeout client 1h',
    '  timeout server 1h',
    '  timeout client-fin 30s',
    '  timeout server-fin 30s',
    ...(splice ? ['  option splice-auto'] : []),
    `frontend bench_${port}`,
    `  bind :::${port} v6only`,
    `  maxconn ${maxconn}`,
    `  default_backend server4_${port}`,
    `backend server4_${port}`,
    `  server s ${SERVER4}:${SERVER_PORT}`,
    '',
  ].join('\n');
}

/** haproxy in the foreground (-db), on a generated config; `splice` names the row haproxy-splice. */
export async function startHaproxy(port: number, dir: string, splice: boolean): Promise<System> {
  const name = splice ? 'haproxy-splice' : 'haproxy';
  if (!haproxyInstalled()) return { name, host: TRANSLATED, port, child: null, unavailable: 'not installed' };
  const file = join(dir, `haproxy-${port}.cfg`);
  await writeFile(file, haproxyConfig(port, splice));
  const child = new Child(name, 'haproxy', ['-db', '-f', file]);
  return started(name, child, TRANSLATED, port);
}
