import { fork, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { getSystemErrorName } from 'node:util';
import { loadConfig } from './config/load.js';
import type { Config, ServiceConfig } from './config/types.js';
import { FaithdError } from './errors.js';
import type { Logger } from './log.js';
import { addLocalRoutes, removeLocalRoutes } from './system/route.js';
import type { FromWorker, ToWorker } from './worker.js';

const WORKER_MODULE = new URL('./worker-process.js', import.meta.url);
/** libuv's UV_TCP_IPV6ONLY flag for uv_tcp_bind (uv.h; stable across libuv 1.x). */
const UV_TCP_IPV6ONLY = 1;
/** How long a worker may take to start listening before start() gives up. */
const LISTEN_TIMEOUT = 10_000;
/** Restart backoff: first restart after this, doubling per quick crash, up to the cap. */
const RESTART_DELAY = 100;
const RESTART_DELAY_MAX = 30_000;
/** A worker that ran this long before dying was healthy: its next restart is immediate again. */
const HEALTHY_RUN = 10_000;
/** Extra time, past the drain deadline, before a worker that has not exited is killed. */
const KILL_GRACE = 5_000;

interface NativeHandle {
  close(): void;
  getsockname(out: { port?: number }): number;
}

type CreateServerHandle = (
  address: string,
  port: number,
  addressType: number,
  fd: number | undefined,
  flags: number,
) => NativeHandle | number;

/**
 * Binds [::]:port with IPV6_V6ONLY without listening. The supervisor owns this socket and
 * hands it to each worker of the port, which listen and accept on it: a worker that dies
 * leaves the socket open, so connections wait in the backlog for its replacement instead of
 * being refused, and workers need no privilege to bind. This is what node:cluster does for
 * its workers; the function is node:net's own (`_createServerHandle`).
 */
function bindPort(port: number): NativeHandle {
  const create = (net as unknown as { _createServerHandle: CreateServerHandle })._createServerHandle;
  const handle = create('::', port, 6, undefined, UV_TCP_IPV6ONLY);
  if (typeof handle === 'number') throw listenError(port, getSystemErrorName(handle));
  // libuv defers a bind's EADDRINUSE to listen(), but the workers listen on their own wrap of
  // the descriptor, which does not carry the deferred error: an unbound socket would listen on
  // a random port. Ask the socket where it is bound instead.
  const address: { port?: number } = {};
  const err = handle.getsockname(address);
  if (err !== 0 || address.port !== port) {
    handle.close();
    throw listenError(port, err !== 0 ? getSystemErrorName(err) : 'EADDRINUSE');
  }
  return handle;
}

function listenError(port: number, code: string, message?: string): FaithdError {
  switch (code) {
    case 'EADDRINUSE':
      return new FaithdError('ADDRESS_IN_USE', `port ${port}: address already in use (another process listens on [::]:${port})`);
    case 'EACCES':
    case 'EPERM':
      return new FaithdError('NO_PERMISSION', `port ${port}: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)`);
    case 'EAFNOSUPPORT':
    case 'EADDRNOTAVAIL':
      return new FaithdError('INTERNAL', `port ${port}: cannot bind [::]:${port} (${code}): is IPv6 enabled on this host?`);
    default:
      return new FaithdError('INTERNAL', `port ${port}: cannot listen: ${message ?? code}`);
  }
}

/** One worker process of one port; it outlives its processes (restarts reuse the slot). */
interface Slot {
  readonly port: number;
  readonly index: number;
  child: ChildProcess | undefined;
  startedAt: number;
  failures: number;
  restarts: number;
  restartTimer: NodeJS.Timeout | undefined;
}

function newSlot(port: number, index: number): Slot {
  return { port, index, child: undefined, startedAt: 0, failures: 0, restarts: 0, restartTimer: undefined };
}

/** A port with its bound socket and its workers. */
interface Port {
  service: ServiceConfig;
  readonly handle: NativeHandle;
  readonly slots: Slot[];
}

/**
 * The main process: loads the config, installs the local routes, binds each service port,
 * forks its workers and restarts any that die, and runs the graceful stop.
 */
export class Supervisor {
  private config: Config;
  private readonly log: Logger;
  private readonly ports = new Map<number, Port>();
  private addedRoutes: string[] = [];
  private stopping: Promise<void> | undefined;
  private stopped!: () => void;
  /** Resolves once the supervisor has stopped and cleaned up. */
  readonly done: Promise<void>;

  constructor(config: Config, log: Logger) {
    this.config = config;
    this.log = log;
    this.done = new Promise((resolve) => {
      this.stopped = resolve;
    });
  }

  /** Routes, sockets and workers; resolves once every listener accepts, or undoes it all and throws. */
  async start(): Promise<void> {
    try {
      if (this.config.route === 'manage') {
        this.addedRoutes = await addLocalRoutes(this.config.prefixes);
        for (const prefix of this.addedRoutes) this.log.info({ prefix }, 'local route added');
      }
      for (const service of this.config.services) this.ports.set(service.port, this.openPort(service));
      await Promise.all([...this.ports.values()].flatMap((p) => p.slots.map((slot) => this.spawn(slot))));
    } catch (err) {
      await this.teardown(0);
      throw err;
    }
    this.log.info(
      { ports: [...this.ports.keys()], prefixes: this.config.prefixes, workers: this.workerCount() },
      'ready',
    );
  }

  /** Graceful stop: stop accepting, drain connections until the drain timeout, clean up. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.log.info({ drain: this.config.timeouts.drain }, 'stopping');
      await this.teardown(this.config.timeouts.drain);
      this.log.info('stopped');
      this.stopped();
    })();
    return this.stopping;
  }

  /**
   * Re-reads the config file. An invalid file changes nothing. Workers of unchanged ports get
   * the new config for new connections; removed ports drain; added ports get workers.
   */
  async reload(): Promise<void> {
    if (this.stopping) return;
    let config: Config;
    try {
      const loaded = await loadConfig(this.config.file);
      for (const warning of loaded.warnings) this.log.warn(warning);
      config = loaded.config;
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'reload failed: the running config is unchanged');
      return;
    }
    if (config.route !== this.config.route || config.prefixes.join() !== this.config.prefixes.join()) {
      this.log.warn('prefixes or route mode changed: restart faithd6 to apply them');
      config = { ...config, prefixes: this.config.prefixes, route: this.config.route };
    }
    this.config = config;
    const wanted = new Map(config.services.map((s) => [s.port, s]));
    for (const [portNumber, port] of this.ports) {
      const service = wanted.get(portNumber);
      if (service === undefined) {
        this.ports.delete(portNumber);
        void this.closePort(port, config.timeouts.drain);
        continue;
      }
      port.service = service;
      for (const slot of port.slots) this.send(slot, { type: 'config', config });
      // More or fewer workers share the same socket: nothing is rebound.
      const extra = port.slots.splice(service.workers);
      if (extra.length > 0) void this.drainSlots(extra, config.timeouts.drain);
      for (let index = port.slots.length; index < service.workers; index++) {
        const slot = newSlot(portNumber, index);
        port.slots.push(slot);
        this.spawn(slot).catch((err: Error) => this.log.error({ port: portNumber, err: err.message }, 'worker start failed'));
      }
    }
    for (const [portNumber, service] of wanted) {
      if (this.ports.has(portNumber)) continue;
      try {
        const port = this.openPort(service);
        this.ports.set(portNumber, port);
        await Promise.all(port.slots.map((slot) => this.spawn(slot)));
      } catch (err) {
        this.log.error({ port: portNumber, err: (err as Error).message }, 'cannot open port');
      }
    }
    this.log.info({ ports: [...this.ports.keys()] }, 'reloaded');
  }

  private workerCount(): number {
    let n = 0;
    for (const port of this.ports.values()) n += port.slots.length;
    return n;
  }

  private openPort(service: ServiceConfig): Port {
    const handle = bindPort(service.port);
    const slots: Slot[] = [];
    for (let index = 0; index < service.workers; index++) slots.push(newSlot(service.port, index));
    return { service, handle, slots };
  }

  private send(slot: Slot, message: ToWorker, handle?: NativeHandle): void {
    const child = slot.child;
    if (child?.connected) child.send(message, handle as net.Server | undefined);
  }

  /** Forks a worker for the slot and hands it the port's socket; resolves once it listens. */
  private spawn(slot: Slot): Promise<void> {
    const port = this.ports.get(slot.port);
    if (port === undefined) return Promise.resolve();
    const child = fork(WORKER_MODULE, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    slot.child = child;
    slot.startedAt = Date.now();
    this.log.info({ port: slot.port, worker: child.pid, restarts: slot.restarts }, 'worker started');
    child.on('exit', (code, signal) => this.onExit(slot, child, code, signal));
    this.send(slot, { type: 'listen', port: slot.port, config: this.config }, port.handle);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new FaithdError('INTERNAL', `port ${slot.port}: worker ${child.pid} did not start listening within ${LISTEN_TIMEOUT / 1000} s`));
      }, LISTEN_TIMEOUT);
      const onMessage = (message: FromWorker): void => {
        if (message.type === 'listening') {
          cleanup();
          resolve();
        } else if (message.type === 'listen failed') {
          cleanup();
          reject(listenError(slot.port, message.code, message.message));
        }
      };
      const onExit = (): void => {
        cleanup();
        reject(new FaithdError('INTERNAL', `port ${slot.port}: worker ${child.pid} exited before listening`));
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('exit', onExit);
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
    });
  }

  private onExit(slot: Slot, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (slot.child !== child) return;
    slot.child = undefined;
    const port = this.ports.get(slot.port);
    if (this.stopping || port === undefined || !port.slots.includes(slot)) return;
    const ranFor = Date.now() - slot.startedAt;
    slot.failures = ranFor >= HEALTHY_RUN ? 0 : slot.failures + 1;
    const delay = Math.min(RESTART_DELAY_MAX, RESTART_DELAY * 2 ** Math.max(0, slot.failures - 1));
    this.log.warn({ port: slot.port, worker: child.pid, code, signal, restartIn: delay }, 'worker exited');
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      slot.restarts += 1;
      this.spawn(slot).catch((err: Error) => this.log.error({ port: slot.port, err: err.message }, 'worker restart failed'));
    }, delay);
  }

  /** Stops accepting on a port, drains its workers until `drain` ms from now, then closes it. */
  private async closePort(port: Port, drain: number): Promise<void> {
    // Close our copy first: once the workers close theirs, the kernel stops completing
    // handshakes for this port, so no connection is left waiting in a dead backlog.
    port.handle.close();
    await this.drainSlots(port.slots, drain);
  }

  /** Tells these workers to drain until `drain` ms from now; resolves once they have exited. */
  private async drainSlots(slots: readonly Slot[], drain: number): Promise<void> {
    const deadline = Date.now() + drain;
    await Promise.all(
      slots.map((slot) => {
        clearTimeout(slot.restartTimer);
        const child = slot.child;
        if (child === undefined || child.exitCode !== null || child.signalCode !== null) return undefined;
        return new Promise<void>((resolve) => {
          const killer = setTimeout(() => child.kill('SIGKILL'), drain + KILL_GRACE);
          child.once('exit', () => {
            clearTimeout(killer);
            resolve();
          });
          if (child.connected) this.send(slot, { type: 'drain', deadline });
          else child.kill('SIGTERM');
        });
      }),
    );
  }

  private async teardown(drain: number): Promise<void> {
    const ports = [...this.ports.values()];
    this.ports.clear();
    await Promise.all(ports.map((port) => this.closePort(port, drain)));
    try {
      await removeLocalRoutes(this.addedRoutes);
      for (const prefix of this.addedRoutes) this.log.info({ prefix }, 'local route removed');
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'cannot remove local route');
    }
    this.addedRoutes = [];
  }
}
