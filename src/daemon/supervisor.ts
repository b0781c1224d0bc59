import { Announcer } from '../announce/announcer.js';
import { birdLink } from '../announce/bird.js';
import { loadConfig } from '../config/load.js';
import { planReload } from '../config/diff.js';
import type { Config, ServiceConfig } from '../config/types.js';
import type { DaemonStatus, PortStatus, ReloadOutcome } from '../control/protocol.js';
import { FaithdError } from '../errors.js';
import { bindHandle, UV_TCP_IPV6ONLY, type TcpHandle } from '../relay/listener.js';
import { choosePlane, type PlaneChoice } from '../relay/native.js';
import type { Logger } from '../log.js';
import { addLocalRoutes, removeLocalRoutes, requireLocalRoutes } from '../system/route.js';
import { workerIdentity, type Identity } from '../system/user.js';
import { version } from '../version.js';
import { sumStats, type FromWorker, type ToWorker, type WorkerStats } from '../worker/messages.js';
import { Retirements, type PortCounters } from './counters.js';
import { restartBackoff, HEALTHY_RUN, type ForkWorker, type WorkerProcess } from './worker-process.js';

/** How long a worker may take to start listening before start() gives up. */
const LISTEN_TIMEOUT = 10_000;
/** Quick exits in a row after which a port counts as failed, and the prefixes are withdrawn. */
const FAILED_AFTER = 3;
/** Extra time, past the drain deadline, before a worker that has not exited is killed. */
const KILL_GRACE = 5_000;

/**
 * Binds [::]:port with IPV6_V6ONLY without listening. The supervisor owns this socket and
 * hands it to each worker of the port, which listen and accept on it: a worker that dies
 * leaves the socket open, so connections wait in the backlog for its replacement instead of
 * being refused, and workers need no privilege to bind. This is what node:cluster does for
 * its workers; the function is node:net's own (`_createServerHandle`).
 */
function bindPort(port: number): TcpHandle {
  const handle = bindHandle('::', port, UV_TCP_IPV6ONLY);
  if (typeof handle === 'string') throw listenError(port, handle);
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
      return new FaithdError('LISTEN', `port ${port}: cannot bind [::]:${port} (${code}): is IPv6 enabled on this host?`);
    default:
      return new FaithdError('LISTEN', `port ${port}: cannot listen: ${message ?? code}`);
  }
}

/** One worker process of one port; it outlives its processes (restarts reuse the slot). */
interface Slot {
  readonly port: number;
  child: WorkerProcess | undefined;
  /** Whether its worker holds a connection to BIRD (to withdraw with, should the supervisor vanish). */
  birdLinked: boolean;
  startedAt: number;
  failures: number;
  restarts: number;
  restartTimer: NodeJS.Timeout | undefined;
  /** The data plane its process said it listens on. */
  dataPlane: PlaneChoice | undefined;
  /** The counters its current process last reported (a pong, or its last words on draining). */
  lastSeen: WorkerStats | undefined;
}

function newSlot(port: number): Slot {
  return {
    port,
    child: undefined,
    birdLinked: false,
    startedAt: 0,
    failures: 0,
    restarts: 0,
    restartTimer: undefined,
    lastSeen: undefined,
    dataPlane: undefined,
  };
}

/** A port with its bound socket and its workers. */
interface Port {
  service: ServiceConfig;
  readonly handle: TcpHandle;
  readonly slots: Slot[];
}

/** How the supervisor was started, beside its config. */
export interface SupervisorOptions {
  /**
   * Whether `route: manage` is this process's job. False under systemd: the unit's privileged
   * ExecStartPre=+/ExecStopPost=+ lines own the routes, and the sandboxed daemon never runs `ip`.
   */
  readonly routes: boolean;
  /** How workers are started; forkWorker unless a test stands in. */
  readonly fork: ForkWorker;
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
  /** Who the workers run as, when started as root. */
  private identity: Identity | undefined;
  private readonly startedAt = new Date();
  private lastReload: ReloadOutcome | null = null;
  /** Reloads since start, by outcome. */
  readonly reloads = { applied: 0, refused: 0 };
  /** What exited processes and removed slots counted, by port. */
  private readonly retired = new Retirements();
  private pingSeq = 0;
  private reloading: Promise<ReloadOutcome> | undefined;
  private stopping: Promise<void> | undefined;
  private stopped!: () => void;
  /** Resolves once the supervisor has stopped and cleaned up. */
  readonly done: Promise<void>;

  private readonly options: SupervisorOptions;
  /** Drives the BIRD protocol that announces the prefixes, when the config has one. */
  private announcer: Announcer | undefined;

  constructor(config: Config, log: Logger, options: SupervisorOptions) {
    this.config = config;
    this.log = log;
    this.options = options;
    this.done = new Promise((resolve) => {
      this.stopped = resolve;
    });
  }

  /** Routes, sockets and workers; resolves once every listener accepts, or undoes it all and throws. */
  async start(): Promise<void> {
    try {
      this.identity = workerIdentity(this.config.user, this.config.file);
      if (this.config.route === 'manage' && this.options.routes) {
        this.addedRoutes = await addLocalRoutes(this.config.prefixes);
        for (const prefix of this.addedRoutes) this.log.info({ prefix }, 'local route added');
      } else if (this.config.route === 'manage') {
        await requireLocalRoutes(this.config.prefixes);
      }
      for (const service of this.config.services) this.ports.set(service.port, this.openPort(service));
      await Promise.all([...this.ports.values()].flatMap((p) => p.slots.map((slot) => this.spawn(slot))));
    } catch (err) {
      await this.teardown(0);
      throw err;
    }
    const plane = this.dataPlane();
    this.warnPlane(plane);
    this.log.info(
      {
        ports: [...this.ports.keys()],
        prefixes: this.config.prefixes,
        workers: this.workerCount(),
        user: this.identity?.name,
        dataPlane: plane.dataPlane,
      },
      'ready',
    );
    const { birdSocket, protocol } = this.config.announce;
    if (birdSocket !== null) {
      this.announcer = new Announcer({ socket: birdSocket, protocol }, this.log, () => void this.linkWorkers());
      await this.announce();
    }
  }

  /**
   * Gives every worker that has none a connection to BIRD's control socket, opened here (a
   * worker runs unprivileged) and passed over IPC: should the supervisor be killed, its workers
   * withdraw over it before they drain (src/worker/worker.ts). Called whenever BIRD answered.
   */
  private async linkWorkers(): Promise<void> {
    const { birdSocket, protocol } = this.config.announce;
    if (birdSocket === null || this.stopping) return;
    for (const port of this.ports.values()) {
      for (const slot of port.slots) {
        const child = slot.child;
        if (child === undefined || !child.connected || slot.birdLinked) continue;
        slot.birdLinked = true;
        try {
          const link = await birdLink(birdSocket);
          // Never what keeps the supervisor running: a send that fails (the worker exited
          // meanwhile) leaves our end open.
          link.unref();
          if (slot.child === child && child.connected) {
            // Node closes our end once it is sent; if it cannot be, we do.
            (child.send as (m: ToWorker, h: unknown, cb: (err: Error | null) => void) => void)({ type: 'bird', protocol }, link, (err) => {
              if (err === null) return;
              link.destroy();
              if (slot.child === child) slot.birdLinked = false;
            });
          } else {
            slot.birdLinked = false;
            link.destroy();
          }
        } catch (err) {
          slot.birdLinked = false;
          this.log.debug({ err: (err as Error).message }, 'no BIRD connection for a worker');
        }
      }
    }
  }

  /**
   * Announces while every port has a working listener, withdraws while one is failed (its
   * worker keeps exiting) or the supervisor stops. A reload withdraws nothing.
   */
  private announce(): Promise<void> {
    if (this.announcer === undefined || this.stopping) return Promise.resolve();
    const failed = [...this.ports.values()].filter((port) => port.slots.some((slot) => slot.failures >= FAILED_AFTER)).map((port) => port.service.port);
    if (failed.length > 0) return this.announcer.want(false, `port ${failed.join(', ')} failed: its worker keeps exiting`);
    return this.announcer.want(true, 'every listener accepts');
  }

  /** Graceful stop: stop accepting, drain connections until the drain timeout, clean up. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.log.info({ drain: this.config.timeouts.drain }, 'stopping');
      if (this.announcer !== undefined) {
        // Withdraw first, and go on accepting while the router moves new flows elsewhere.
        await this.announcer.close('stopping');
        const grace = this.config.announce.withdrawGrace;
        this.log.info({ grace }, 'withdrawn; accepting for the grace period before draining');
        await new Promise((resolve) => setTimeout(resolve, grace));
      }
      await this.teardown(this.config.timeouts.drain);
      this.log.info('stopped');
      this.stopped();
    })();
    return this.stopping;
  }

  /**
   * Re-reads the config file. An invalid file changes nothing. Workers of unchanged ports get
   * the new config for new connections; removed ports drain; added ports get workers.
   * Concurrent reloads (a SIGHUP during `faithd6 reload`) share one run.
   */
  reload(): Promise<ReloadOutcome> {
    this.reloading ??= this.reloadOnce().finally(() => {
      this.reloading = undefined;
    });
    return this.reloading;
  }

  private async reloadOnce(): Promise<ReloadOutcome> {
    const at = new Date().toISOString();
    if (this.stopping) return { ok: false, at, changes: [], warnings: [], error: 'faithd6 is stopping' };
    let config: Config;
    let warnings: readonly string[];
    try {
      ({ config, warnings } = await loadConfig(this.config.file));
    } catch (err) {
      const outcome = { ok: false, at, changes: [], warnings: [], error: (err as Error).message };
      this.lastReload = outcome;
      this.reloads.refused += 1;
      this.log.error({ err: outcome.error }, 'reload failed: the running config is unchanged');
      return outcome;
    }
    const plan = planReload(this.config, config);
    const { changes, kept } = plan;
    config = plan.config;
    this.config = config;
    this.log.level = config.log.level;
    const wanted = new Map(config.services.map((s) => [s.port, s]));
    for (const [portNumber, port] of this.ports) {
      const service = wanted.get(portNumber);
      if (service === undefined) {
        this.ports.delete(portNumber);
        for (const slot of port.slots) this.retired.of(portNumber).restarts += slot.restarts;
        void this.closePort(port, config.timeouts.drain);
        continue;
      }
      port.service = service;
      for (const slot of port.slots) this.send(slot, { type: 'config', config });
      // More or fewer workers share the same socket: nothing is rebound.
      const extra = port.slots.splice(service.workers);
      for (const slot of extra) this.retired.of(portNumber).restarts += slot.restarts;
      if (extra.length > 0) void this.drainSlots(extra, config.timeouts.drain);
      while (port.slots.length < service.workers) {
        const slot = newSlot(portNumber);
        port.slots.push(slot);
        this.spawn(slot).catch((err: Error) => this.log.error({ port: portNumber, err: err.message }, 'worker start failed'));
      }
    }
    const allWarnings = [...warnings, ...kept];
    for (const [portNumber, service] of wanted) {
      if (this.ports.has(portNumber)) continue;
      try {
        const port = this.openPort(service);
        this.ports.set(portNumber, port);
        await Promise.all(port.slots.map((slot) => this.spawn(slot)));
      } catch (err) {
        allWarnings.push((err as Error).message);
        this.log.error({ port: portNumber, err: (err as Error).message }, 'cannot open port');
      }
    }
    for (const warning of allWarnings) this.log.warn(warning);
    const outcome = { ok: true, at, changes, warnings: allWarnings };
    this.lastReload = outcome;
    this.reloads.applied += 1;
    this.log.info({ changes, ports: [...this.ports.keys()] }, 'reloaded');
    return outcome;
  }

  /**
   * Whether every live worker answers a heartbeat within `timeout` ms (the systemd watchdog's
   * test: a hung worker must trip it). A worker being restarted does not count.
   */
  async healthy(timeout: number): Promise<boolean> {
    const { expected, answers } = await this.ping(timeout);
    return answers.size === expected;
  }

  /** Why the native data plane is not used, said once per reason (workers of every port report theirs). */
  private readonly planeWarnings = new Set<string>();

  private warnPlane(plane: PlaneChoice): void {
    if (plane.dataPlane !== 'js' || plane.fallback === null || this.planeWarnings.has(plane.fallback)) return;
    this.planeWarnings.add(plane.fallback);
    this.log.warn({ reason: plane.fallback }, 'native data plane unavailable: relaying on the JavaScript data plane');
  }

  /**
   * The configured data plane and what plain TCP services relay on: what loading the addon
   * here says (the workers load the same one), unless a worker said its plane did not start.
   */
  private dataPlane(): PlaneChoice & { readonly configured: 'native' | 'js' } {
    const chosen = choosePlane(this.config.dataPlane, 'tcp');
    const fellBack = [...this.ports.values()]
      .filter((port) => port.service.protocol === 'tcp')
      .flatMap((port) => port.slots.map((slot) => slot.dataPlane))
      .find((plane) => plane !== undefined && plane.dataPlane === 'js' && plane.fallback !== null);
    return { configured: this.config.dataPlane, ...(chosen.dataPlane === 'native' && fellBack !== undefined ? fellBack : chosen) };
  }

  /** Everything `faithd6 status` shows, with fresh counters from each worker. */
  async status(): Promise<DaemonStatus> {
    const { answers } = await this.ping(1_000);
    const ports: PortStatus[] = [...this.ports.values()].map((port) => {
      const workers = port.slots.map((slot) => {
        const stats = slot.child === undefined ? undefined : answers.get(slot.child);
        return { pid: slot.child?.pid ?? null, restarts: slot.restarts, answering: stats !== undefined, stats: stats ?? null };
      });
      return {
        port: port.service.port,
        backendPort: port.service.backendPort,
        workers,
        dataPlane: port.slots.find((slot) => slot.dataPlane !== undefined)?.dataPlane ?? choosePlane(this.config.dataPlane, port.service.protocol),
        totals: sumStats(workers.flatMap((w) => (w.stats ? [w.stats] : []))),
      };
    });
    return {
      pid: process.pid,
      version: version(),
      config: this.config.file,
      startedAt: this.startedAt.toISOString(),
      uptime: Math.round((Date.now() - this.startedAt.getTime()) / 1000),
      prefixes: this.config.prefixes,
      dataPlane: this.dataPlane(),
      lastReload: this.lastReload,
      announce: this.announcer?.status() ?? null,
      ports,
      totals: sumStats(ports.map((p) => p.totals)),
    };
  }

  /**
   * Every port's counters since the supervisor started, for /metrics: the live processes' (fresh
   * where they answer, else as they last reported) plus what exited processes left, so that a
   * worker's restart never makes a counter go down.
   */
  async counters(): Promise<PortCounters[]> {
    const { answers } = await this.ping(1_000);
    return [...this.ports.values()].map((port) => {
      const live = port.slots.flatMap((slot) => {
        const fresh = slot.child === undefined ? undefined : answers.get(slot.child);
        if (fresh !== undefined) slot.lastSeen = fresh;
        return slot.lastSeen === undefined ? [] : [slot.lastSeen];
      });
      const restarts = port.slots.reduce((n, slot) => n + slot.restarts, 0);
      return this.retired.totals(port.service.port, port.slots.length, live, restarts);
    });
  }

  /** Pings every live worker; resolves with the counters of those that answered in time. */
  private async ping(timeout: number): Promise<{ expected: number; answers: Map<WorkerProcess, WorkerStats> }> {
    const seq = ++this.pingSeq;
    const answers = new Map<WorkerProcess, WorkerStats>();
    const children = [...this.ports.values()]
      .flatMap((port) => port.slots.map((slot) => slot.child))
      .filter((child): child is WorkerProcess => child !== undefined && child.connected);
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            const finish = (): void => {
              clearTimeout(timer);
              child.off('message', onMessage);
              child.off('exit', finish);
              resolve();
            };
            const onMessage = (message: FromWorker): void => {
              if (message.type !== 'pong' || message.seq !== seq) return;
              answers.set(child, message.stats);
              finish();
            };
            const timer = setTimeout(finish, timeout);
            child.on('message', onMessage);
            child.once('exit', finish);
            child.send({ type: 'ping', seq }, undefined, (err) => {
              if (err) finish();
            });
          }),
      ),
    );
    return { expected: children.length, answers };
  }

  private workerCount(): number {
    let n = 0;
    for (const port of this.ports.values()) n += port.slots.length;
    return n;
  }

  private openPort(service: ServiceConfig): Port {
    const handle = bindPort(service.port);
    const slots: Slot[] = [];
    for (let n = 0; n < service.workers; n++) slots.push(newSlot(service.port));
    return { service, handle, slots };
  }

  private send(slot: Slot, message: ToWorker, handle?: TcpHandle): void {
    const child = slot.child;
    if (child?.connected) child.send(message, handle);
  }

  /** Forks a worker for the slot and hands it the port's socket; resolves once it listens. */
  private spawn(slot: Slot): Promise<void> {
    const port = this.ports.get(slot.port);
    if (port === undefined) return Promise.resolve();
    const child = this.options.fork(this.identity);
    slot.child = child;
    slot.birdLinked = false;
    slot.startedAt = Date.now();
    this.log.info({ port: slot.port, worker: child.pid, restarts: slot.restarts }, 'worker started');
    slot.lastSeen = undefined;
    child.on('exit', (code, signal) => this.onExit(slot, child, code, signal));
    child.on('message', (message) => {
      if ((message.type === 'pong' || message.type === 'drained') && slot.child === child) slot.lastSeen = message.stats;
      if (message.type === 'bird lost' && slot.child === child) slot.birdLinked = false;
    });
    this.send(slot, { type: 'listen', port: slot.port, config: this.config }, port.handle);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new FaithdError('WORKER', `port ${slot.port}: worker ${child.pid} did not start listening within ${LISTEN_TIMEOUT / 1000} s`));
      }, LISTEN_TIMEOUT);
      const onMessage = (message: FromWorker): void => {
        if (message.type === 'listening') {
          cleanup();
          slot.dataPlane = { dataPlane: message.dataPlane, fallback: message.fallback };
          // A worker that could not use the native plane where this process could (it runs as
          // another user, its plane did not start) says why; an FTP port relays on js by design.
          if (port.service.protocol === 'tcp') this.warnPlane(slot.dataPlane);
          // A new worker gets its connection to BIRD now if BIRD answers, not at the next re-assert.
          if (this.announcer?.status().error === null) void this.linkWorkers();
          // A worker that keeps running this long ends its port's run of failures.
          setTimeout(() => {
            if (slot.child !== child || slot.failures === 0) return;
            slot.failures = 0;
            void this.announce();
          }, HEALTHY_RUN).unref();
          resolve();
        } else if (message.type === 'listen failed') {
          cleanup();
          reject(listenError(slot.port, message.code, message.message));
        }
      };
      const onExit = (): void => {
        cleanup();
        reject(new FaithdError('WORKER', `port ${slot.port}: worker ${child.pid} exited before listening`));
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

  private onExit(slot: Slot, child: WorkerProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (slot.child !== child) return;
    slot.child = undefined;
    if (slot.lastSeen !== undefined) {
      this.retired.processExited(slot.port, slot.lastSeen);
      slot.lastSeen = undefined;
    }
    const port = this.ports.get(slot.port);
    if (this.stopping || port === undefined || !port.slots.includes(slot)) return;
    const { failures, delay } = restartBackoff(slot.failures, Date.now() - slot.startedAt);
    slot.failures = failures;
    void this.announce();
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
        if (child === undefined || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
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
      for (const { prefix, outcome } of await removeLocalRoutes(this.addedRoutes)) {
        if (outcome === 'removed') this.log.info({ prefix }, 'local route removed');
        else this.log.warn({ prefix, outcome }, 'local route not removed: it is no longer the one faithd6 added');
      }
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'cannot remove local route');
    }
    this.addedRoutes = [];
  }
}
