// What the supervisor and its workers say to each other over the IPC channel, and the
// counters a worker reports: one file both sides import, so neither imports the other.
import type { Config } from '../config/types.js';

/** Messages the supervisor sends a worker. The listen message carries the bound socket. */
export type ToWorker =
  | { readonly type: 'listen'; readonly port: number; readonly config: Config }
  | { readonly type: 'config'; readonly config: Config }
  | { readonly type: 'ping'; readonly seq: number }
  | { readonly type: 'drain'; readonly deadline: number }
  /** With a connection to BIRD's control socket (greeted already): for withdrawing should the supervisor vanish. */
  | { readonly type: 'bird'; readonly protocol: string };

/** Messages a worker sends the supervisor. */
export type FromWorker =
  /** Listening, on this data plane (and why not the native one, when that was configured). */
  | { readonly type: 'listening'; readonly dataPlane: 'native' | 'js'; readonly fallback: string | null }
  | { readonly type: 'listen failed'; readonly code: string; readonly message: string }
  | { readonly type: 'pong'; readonly seq: number; readonly stats: WorkerStats }
  | { readonly type: 'drained'; readonly stats: WorkerStats }
  /** Its connection to BIRD closed (BIRD restarted): it would like another. */
  | { readonly type: 'bird lost' };

/** One worker's counters since it started; bytes include the connections still open. */
export interface WorkerStats {
  /** Relayed connections open now. */
  active: number;
  /** Connections relayed (accepted, permitted, backend dialled) since the worker started. */
  relayed: number;
  /** Refused by the access rules. */
  denied: number;
  /** Dialled an address outside every prefix. */
  notTranslated: number;
  /** Reset because a limit was reached (or the worker was draining). */
  limited: number;
  /** Relayed connections whose backend refused, was unreachable or timed out. */
  connectFailed: number;
  /** Bytes from clients to backends. */
  up: number;
  /** Bytes from backends to clients. */
  down: number;
  /**
   * accept() failures the listener reported (ENOBUFS, ENOMEM, EPERM): it keeps going. Not
   * EMFILE or ENFILE: libuv sheds the waiting connections then without a word (src/relay/listener.ts).
   */
  acceptErrors: number;
  /** Every connection by how it ended (fin, reset by client, refused, denied, limit...). */
  ends: Record<string, number>;
  /** Denied connections by reason. */
  deniedBy: Record<string, number>;
  /** Limit hits by limit. */
  limitedBy: Record<string, number>;
  /** Relayed connections by how long the backend took to answer: counts per CONNECT_BUCKETS bucket, the last above them all. */
  connectSeconds: number[];
  connectSecondsSum: number;
  /** Closed relayed connections by how long they lasted, per DURATION_BUCKETS bucket. */
  durationSeconds: number[];
  durationSecondsSum: number;
  /** CPU time the worker process used, user and system. */
  cpuSeconds: number;
  /** The worker's resident memory now (a gauge, like active). */
  rssBytes: number;
}

/** Upper bounds, in seconds, of the backend connect time histogram's buckets. */
export const CONNECT_BUCKETS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Upper bounds, in seconds, of the connection duration histogram's buckets. */
export const DURATION_BUCKETS: readonly number[] = [0.01, 0.1, 1, 10, 60, 300, 1800, 3600, 7200, 86400];

/** Counts `seconds` into a histogram's buckets (non-cumulative; the last bucket is +Inf). */
export function observe(counts: number[], bounds: readonly number[], seconds: number): void {
  let i = 0;
  while (i < bounds.length && seconds > (bounds[i] as number)) i++;
  counts[i] = (counts[i] ?? 0) + 1;
}

/** The fields that say how things are now, not how many happened: not summed over a worker's past processes. */
export const GAUGES: readonly (keyof WorkerStats)[] = ['active', 'rssBytes'];

/** Counters all zero. */
export function emptyStats(): WorkerStats {
  return {
    active: 0,
    relayed: 0,
    denied: 0,
    notTranslated: 0,
    limited: 0,
    connectFailed: 0,
    up: 0,
    down: 0,
    acceptErrors: 0,
    ends: {},
    deniedBy: {},
    limitedBy: {},
    connectSeconds: new Array<number>(CONNECT_BUCKETS.length + 1).fill(0),
    connectSecondsSum: 0,
    durationSeconds: new Array<number>(DURATION_BUCKETS.length + 1).fill(0),
    durationSecondsSum: 0,
    cpuSeconds: 0,
    rssBytes: 0,
  };
}

/** Adds counters, the per-reason ones key by key and the histograms bucket by bucket; the empty sum is all zeros. */
export function sumStats(all: Iterable<WorkerStats>): WorkerStats {
  const sum = emptyStats();
  for (const stats of all) {
    for (const [key, value] of Object.entries(stats) as [keyof WorkerStats, number | number[] | Record<string, number>][]) {
      if (typeof value === 'number') {
        (sum[key] as number) += value;
      } else if (Array.isArray(value)) {
        const into = sum[key] as number[];
        value.forEach((n, i) => (into[i] = (into[i] ?? 0) + n));
      } else {
        const into = sum[key] as Record<string, number>;
        for (const [reason, n] of Object.entries(value)) into[reason] = (into[reason] ?? 0) + n;
      }
    }
  }
  return sum;
}

/** What a process that exited leaves to its slot's totals: its counters, without the gauges. */
export function retiredPart(stats: WorkerStats): WorkerStats {
  const part = { ...stats };
  for (const gauge of GAUGES) (part[gauge] as number) = 0;
  return part;
}
