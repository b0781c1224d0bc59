/**
 * The counters of a port's worker processes past and present, for /metrics: what processes
 * that exited (and slots that were removed) counted stays in the port's totals, so that no
 * counter goes down when a worker restarts.
 */
import { emptyStats, retiredPart, sumStats, type WorkerStats } from '../worker/messages.js';

/** One port's counters since the supervisor started: its processes past and present. */
export interface PortCounters {
  readonly port: number;
  readonly workers: number;
  readonly stats: WorkerStats;
  readonly restarts: number;
}

/** What processes that are gone leave to their port's counters, so that no counter goes down. */
export interface Retired {
  stats: WorkerStats;
  restarts: number;
}

/** By port, what exited processes and removed slots counted; kept when a port goes, in case it comes back. */
export class Retirements {
  private readonly byPort = new Map<number, Retired>();

  of(port: number): Retired {
    let retired = this.byPort.get(port);
    if (retired === undefined) {
      retired = { stats: emptyStats(), restarts: 0 };
      this.byPort.set(port, retired);
    }
    return retired;
  }

  /** A process of `port` exited, its last report being `last`: its counters, not its gauges, stay. */
  processExited(port: number, last: WorkerStats): void {
    const retired = this.of(port);
    retired.stats = sumStats([retired.stats, retiredPart(last)]);
  }

  /** The port's totals: the retired ones and what the live processes report. */
  totals(port: number, workers: number, live: readonly WorkerStats[], liveRestarts: number): PortCounters {
    const retired = this.of(port);
    return { port, workers, stats: sumStats([retired.stats, ...live]), restarts: retired.restarts + liveRestarts };
  }
}
