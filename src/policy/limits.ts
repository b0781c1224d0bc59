import type { LimitsConfig } from '../config/types.js';

/** Which limit a refused connection hit, in the operator's words (status and log lines). */
export type LimitKind =
  | 'descriptors'
  | 'connections per worker'
  | 'pending connects'
  | 'connections per source'
  | 'pending connects per source'
  | 'connections per backend'
  | 'new connections per source';

/** One client source (all addresses of its /sourcePrefixLength). */
interface Source {
  active: number;
  pending: number;
  /** Token bucket for the connection rate. */
  tokens: number;
  /** When the bucket was last refilled (ms, performance.now). */
  stamp: number;
}

/** The slots one admitted connection holds until it is released. */
export interface Ticket {
  readonly source: Source;
  readonly backend: number;
  pending: boolean;
}

/** How often idle sources whose buckets have refilled are forgotten. */
const SWEEP_INTERVAL = 10_000;

/**
 * Admission control for one worker: concurrent connections per worker, per source and per
 * backend, pending connects in all and per source, and a per-source rate. Check and take
 * happen together, so a connection is either admitted with all its slots or refused with the
 * first limit it hit. Memory is bounded: a source is forgotten once it holds nothing and its
 * bucket is full again (forgetting it earlier would hand a flood a fresh bucket).
 */
export class Admission {
  private limits: LimitsConfig;
  private shift: bigint;
  private readonly sources = new Map<bigint, Source>();
  private readonly backends = new Map<number, number>();
  private active = 0;
  private pending = 0;
  /** Relays the worker's descriptors allow (two each); set from its RLIMIT_NOFILE. */
  private descriptorCap = Number.MAX_SAFE_INTEGER;
  private readonly sweeper: NodeJS.Timeout;

  constructor(limits: LimitsConfig) {
    this.limits = limits;
    this.shift = BigInt(128 - limits.sourcePrefixLength);
    this.sweeper = setInterval(() => this.sweep(performance.now()), SWEEP_INTERVAL);
    this.sweeper.unref();
  }

  /**
   * New limits apply to new connections; what is held stays held. A changed rate starts every
   * source with a full bucket of the new size: a bucket filled under the old rate means nothing.
   */
  reconfigure(limits: LimitsConfig, now = performance.now()): void {
    if (limits.newConnectionsPerSecond !== this.limits.newConnectionsPerSecond) {
      for (const state of this.sources.values()) {
        state.tokens = bucketSize(limits);
        state.stamp = now;
      }
    }
    if (limits.sourcePrefixLength !== this.limits.sourcePrefixLength) {
      // Sources are keyed by prefix: counting per source starts afresh (held connections
      // release into their old, forgotten entries).
      this.sources.clear();
      this.shift = BigInt(128 - limits.sourcePrefixLength);
    }
    this.limits = limits;
  }

  /**
   * How many relayed connections the process's descriptors allow. Admission stays below it, so
   * the excess is reset and counted here rather than met by EMFILE in accept(), where libuv
   * silently accepts and closes waiting connections and the worker never hears of it.
   */
  setDescriptorCap(relays: number): void {
    this.descriptorCap = Math.max(0, relays);
  }

  /** Connections admitted and not yet released. */
  get connections(): number {
    return this.active;
  }

  /** @internal Sources currently remembered: what the tests of forgetting observe. */
  get trackedSources(): number {
    return this.sources.size;
  }

  /**
   * Admits a connection from `source` to IPv4 `backend` as pending (its backend connect not
   * yet answered), or says which limit it hit.
   */
  admit(source: bigint, backend: number, now = performance.now()): Ticket | LimitKind {
    const l = this.limits;
    if (this.active >= this.descriptorCap) return 'descriptors';
    if (this.active >= l.connectionsPerWorker) return 'connections per worker';
    if (this.pending >= l.pendingConnects) return 'pending connects';
    const sourceKey = source >> this.shift;
    let state = this.sources.get(sourceKey);
    if (state === undefined) {
      state = { active: 0, pending: 0, tokens: bucketSize(l), stamp: now };
      this.sources.set(sourceKey, state);
    }
    if (state.active >= l.connectionsPerSource) return 'connections per source';
    if (state.pending >= l.pendingConnectsPerSource) return 'pending connects per source';
    if ((this.backends.get(backend) ?? 0) >= l.connectionsPerBackend) return 'connections per backend';
    if (l.newConnectionsPerSecond > 0) {
      state.tokens = Math.min(bucketSize(l), state.tokens + ((now - state.stamp) * l.newConnectionsPerSecond) / 1000);
      state.stamp = now;
      if (state.tokens < 1) return 'new connections per source';
      state.tokens -= 1;
    }
    state.active += 1;
    state.pending += 1;
    this.active += 1;
    this.pending += 1;
    this.backends.set(backend, (this.backends.get(backend) ?? 0) + 1);
    return { source: state, backend, pending: true };
  }

  /** The backend answered: the connection no longer counts as pending. */
  established(ticket: Ticket): void {
    if (!ticket.pending) return;
    ticket.pending = false;
    ticket.source.pending -= 1;
    this.pending -= 1;
  }

  /** The connection is gone: every slot it held is free again. */
  release(ticket: Ticket): void {
    this.established(ticket);
    ticket.source.active -= 1;
    this.active -= 1;
    const count = (this.backends.get(ticket.backend) ?? 1) - 1;
    if (count === 0) this.backends.delete(ticket.backend);
    else this.backends.set(ticket.backend, count);
  }

  /** Stops the sweep timer (the worker is going away). */
  close(): void {
    clearInterval(this.sweeper);
  }

  /** Forgets sources that hold nothing and whose buckets would be full by now. */
  sweep(now: number): void {
    const l = this.limits;
    const refill = l.newConnectionsPerSecond > 0 ? (bucketSize(l) * 1000) / l.newConnectionsPerSecond : 0;
    for (const [key, state] of this.sources) {
      if (state.active === 0 && state.pending === 0 && now - state.stamp >= refill) this.sources.delete(key);
    }
  }
}

/** Two seconds' worth of connections, at least one. */
function bucketSize(limits: LimitsConfig): number {
  return Math.max(1, 2 * limits.newConnectionsPerSecond);
}
