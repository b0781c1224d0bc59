// What the supervisor and its workers say to each other over the IPC channel, and the
// counters a worker reports: one file both sides import, so neither imports the other.
import type { Config } from '../config/types.js';

/** Messages the supervisor sends a worker. The listen message carries the bound socket. */
export type ToWorker =
  | { readonly type: 'listen'; readonly port: number; readonly config: Config }
  | { readonly type: 'config'; readonly config: Config }
  | { readonly type: 'ping'; readonly seq: number }
  | { readonly type: 'drain'; readonly deadline: number };

/** Messages a worker sends the supervisor. */
export type FromWorker =
  | { readonly type: 'listening' }
  | { readonly type: 'listen failed'; readonly code: string; readonly message: string }
  | { readonly type: 'pong'; readonly seq: number; readonly stats: WorkerStats }
  | { readonly type: 'drained' };

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
}

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
  };
}

/** Adds counters, the per-reason ones key by key; the empty sum is all zeros. */
export function sumStats(all: Iterable<WorkerStats>): WorkerStats {
  const sum = emptyStats();
  for (const stats of all) {
    for (const [key, value] of Object.entries(stats) as [keyof WorkerStats, number | Record<string, number>][]) {
      if (typeof value === 'number') {
        (sum[key] as number) += value;
      } else {
        const into = sum[key] as Record<string, number>;
        for (const [reason, n] of Object.entries(value)) into[reason] = (into[reason] ?? 0) + n;
      }
    }
  }
  return sum;
}
