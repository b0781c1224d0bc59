import type { AnnounceStatus } from '../announce/announcer.js';
import type { PlaneChoice } from '../relay/native.js';
import type { WorkerStats } from '../worker/messages.js';

/** What `faithd6 status` and `reload` ask the daemon over its control socket: one JSON line each way. */
export type ControlRequest = { readonly cmd: 'status' } | { readonly cmd: 'reload' };

export type ControlResponse =
  { readonly ok: true; readonly status: DaemonStatus } | { readonly ok: true; readonly reload: ReloadOutcome } | { readonly ok: false; readonly error: string };

/** The outcome of a reload: what changed, or why nothing did. */
export interface ReloadOutcome {
  readonly ok: boolean;
  /** When it happened (ISO 8601). */
  readonly at: string;
  /** What the new config changed, one line each, in the operator's words. */
  readonly changes: readonly string[];
  readonly warnings: readonly string[];
  /** Why the file was refused (ok false); the running config is unchanged then. */
  readonly error?: string;
}

export interface WorkerStatus {
  /** The worker process, or null while it is being restarted. */
  readonly pid: number | null;
  readonly restarts: number;
  /** Whether it answered the heartbeat just now. */
  readonly answering: boolean;
  readonly stats: WorkerStats | null;
}

export interface PortStatus {
  readonly port: number;
  readonly backendPort: number;
  readonly workers: readonly WorkerStatus[];
  /** The data plane its workers relay on, and why not the native one when that was configured. */
  readonly dataPlane: PlaneChoice;
  /** The sum over the workers that answered. */
  readonly totals: WorkerStats;
}

export interface DaemonStatus {
  readonly pid: number;
  readonly version: string;
  readonly config: string;
  readonly startedAt: string;
  /** Seconds since start. */
  readonly uptime: number;
  readonly prefixes: readonly string[];
  /** The configured data plane, and what plain TCP services relay on (`fallback`: why not native). */
  readonly dataPlane: PlaneChoice & { readonly configured: 'native' | 'js' };
  readonly lastReload: ReloadOutcome | null;
  /** The BGP announcement through BIRD; null when the config has none. */
  readonly announce: AnnounceStatus | null;
  readonly ports: readonly PortStatus[];
  readonly totals: WorkerStats;
}
