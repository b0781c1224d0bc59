/**
 * Worker processes as the supervisor sees them: how one is started (forked with an IPC
 * channel, or a test's stand-in), and how long to wait before restarting one that died.
 */
import { fork } from 'node:child_process';
import type { TcpHandle } from '../relay/listener.js';
import type { Identity } from '../system/user.js';
import type { FromWorker, ToWorker } from '../worker/messages.js';

const WORKER_MODULE = new URL('../worker/process.js', import.meta.url);
/** Workers speak to the supervisor only; systemd's notification variables are not theirs. */
const WORKER_ENV = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(NOTIFY_SOCKET|WATCHDOG_USEC|WATCHDOG_PID|LISTEN_\w+)$/.test(name)));
/**
 * Restart backoff: a worker that dies after running a while is restarted at once; one that
 * dies again quickly waits this long, doubling per quick crash, up to the cap.
 */
const RESTART_DELAY = 100;
const RESTART_DELAY_MAX = 30_000;
/** A worker that ran this long before dying was healthy: its next restart is immediate again. */
export const HEALTHY_RUN = 10_000;

/**
 * What the supervisor needs of a worker process. A ChildProcess forked with an IPC channel is
 * one; tests give the supervisor stand-ins, to drive backoff, reload and drain in-process.
 */
export interface WorkerProcess {
  readonly pid?: number | undefined;
  readonly connected: boolean;
  readonly exitCode: number | null;
  readonly signalCode: NodeJS.Signals | null;
  /** Sends a message, with the port's listening socket for `listen`. */
  send(message: ToWorker, handle?: TcpHandle, callback?: (error: Error | null) => void): boolean;
  kill(signal?: NodeJS.Signals): boolean;
  on(event: 'message', listener: (message: FromWorker) => void): this;
  on(event: 'exit', listener: (code: number | null, signal: NodeJS.Signals | null) => void): this;
  once(event: 'exit', listener: () => void): this;
  off(event: 'message', listener: (message: FromWorker) => void): this;
  off(event: 'exit', listener: () => void): this;
}

/** Starts one worker process, as `identity` when the supervisor runs as root. */
export type ForkWorker = (identity: Identity | undefined) => WorkerProcess;

/**
 * A real worker: src/worker/process.ts forked with an IPC channel. Started as root, a worker
 * never is: it runs as the configured user from its first instruction (fork sets uid and gid,
 * and drops supplementary groups), and needs no privilege, since the supervisor bound the port.
 */
export const forkWorker: ForkWorker = (identity) =>
  // child_process passes a bare libuv TCP handle the way it passes a net.Server's (node:cluster
  // does the same), but its types name only Server and Socket: hence the cast of send().
  fork(WORKER_MODULE, [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: WORKER_ENV,
    uid: identity?.uid,
    gid: identity?.gid,
  }) as unknown as WorkerProcess;

/** The restart delay after a worker exits, and its count of quick failures since. */
export function restartBackoff(failures: number, ranFor: number): { failures: number; delay: number } {
  const next = ranFor >= HEALTHY_RUN ? 0 : failures + 1;
  const delay = next <= 1 ? 0 : Math.min(RESTART_DELAY_MAX, RESTART_DELAY * 2 ** (next - 2));
  return { failures: next, delay };
}
