import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { request } from '../control/client.js';
import { pidfilePath, socketPath } from '../control/paths.js';
import type { ControlRequest, ControlResponse, DaemonStatus, ReloadOutcome } from '../control/protocol.js';
import { ControlServer } from '../control/server.js';
import type { Config } from '../config/types.js';
import { FaithdError } from '../errors.js';
import { parseListenAddress } from '../net/address.js';
import type { Logger } from '../log.js';
import { Metrics, serveMetrics } from './metrics.js';
import { Supervisor, type SupervisorOptions } from './supervisor.js';
import { systemdNotifier, watchdogInterval } from '../system/notify.js';

/** How often STATUS= is refreshed for `systemctl status`. */
const STATUS_INTERVAL = 10_000;

/**
 * What `faithd6 start` hears from the daemon it spawned, over the IPC channel it opened:
 * ready once every listener accepts, or why starting failed.
 */
export type StartReport =
  | { readonly type: 'started'; readonly pid: number; readonly ports: readonly number[] }
  | { readonly type: 'start failed'; readonly message: string; readonly code: string };

/**
 * The daemon process around the supervisor: the runtime directory with the pidfile and the
 * control socket, signals, systemd notifications and the watchdog. Resolves once it stopped.
 */
export async function runDaemon(config: Config, log: Logger, options: SupervisorOptions): Promise<void> {
  const supervisor = new Supervisor(config, log, options);
  const notifier = systemdNotifier(process.pid, log);
  const dir = config.runtimeDirectory;
  let control: ControlServer | undefined;
  let metrics: Server | undefined;
  const timers: NodeJS.Timeout[] = [];

  const stop = (): void => {
    notifier?.stopping();
    void supervisor.stop();
  };
  // SIGHUP and `faithd6 reload` take the same path; systemd hears RELOADING=1, then READY=1.
  const reload = async (): Promise<ReloadOutcome> => {
    notifier?.reloading();
    const outcome = await supervisor.reload();
    notifier?.ready(summary(await supervisor.status(), outcome.ok ? 'reloaded' : 'reload failed'));
    return outcome;
  };
  const onHup = (): void => void reload();
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', onHup);
  try {
    prepareRuntimeDirectory(dir);
    await refuseIfRunning(socketPath(dir));
    control = await ControlServer.listen(socketPath(dir), (req) => answer(req), log);
    // Before the workers: a metrics address that cannot be bound fails the start with nothing to undo.
    if (config.metrics.listen !== null) {
      const listen = parseListenAddress(config.metrics.listen);
      metrics = await serveMetrics(new Metrics(supervisor), listen, log);
      log.info({ listen: listen.text }, 'metrics served');
    }
    await supervisor.start();
    writeFileSync(pidfilePath(dir), `${process.pid}\n`);
    notifier?.ready(summary(await supervisor.status(), 'ready'));
    startWatchdog();
    process.send?.({ type: 'started', pid: process.pid, ports: config.services.map((s) => s.port) } satisfies StartReport);
    await supervisor.done;
  } catch (err) {
    const e = err as Error & { code?: string };
    process.send?.({ type: 'start failed', message: e.message, code: e instanceof FaithdError ? e.code : 'INTERNAL' } satisfies StartReport);
    throw err;
  } finally {
    for (const timer of timers) clearInterval(timer);
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
    process.off('SIGHUP', onHup);
    removeOwnPidfile(pidfilePath(dir));
    await control?.close();
    if (metrics !== undefined) {
      const closed = new Promise((resolve) => metrics?.close(resolve));
      metrics.closeAllConnections();
      await closed;
    }
    await notifier?.flush();
  }

  async function answer(req: ControlRequest): Promise<ControlResponse> {
    switch (req.cmd) {
      case 'status':
        return { ok: true, status: await supervisor.status() };
      case 'reload':
        return { ok: true, reload: await reload() };
      default:
        return { ok: false, error: `unknown command ${JSON.stringify((req as { cmd?: unknown }).cmd)}` };
    }
  }

  function startWatchdog(): void {
    if (notifier === undefined) return;
    const interval = watchdogInterval(process.env, process.pid);
    if (interval !== undefined) {
      // WATCHDOG=1 only while every worker answers within half the interval: a hung worker
      // stops the pings, and systemd restarts the service.
      timers.push(
        setInterval(() => {
          void supervisor.healthy(interval / 2).then((ok) => {
            if (ok) notifier.watchdog();
            else log.warn('a worker did not answer the heartbeat: watchdog not notified');
          });
        }, interval),
      );
    }
    timers.push(
      setInterval(() => {
        void supervisor.status().then((s) => notifier.status(summary(s)));
      }, STATUS_INTERVAL),
    );
  }

  function summary(status: DaemonStatus, event?: string): string {
    const reload = status.lastReload;
    const last = reload === null ? '' : `; last reload ${reload.at.slice(0, 19)}Z ${reload.ok ? 'ok' : 'failed'}`;
    const head = event === undefined ? '' : `${event}: `;
    return `${head}ports ${status.ports.map((p) => p.port).join(', ')}; ${status.totals.active} active, ${status.totals.relayed} relayed, ${status.totals.denied} denied${last}`;
  }
}

function prepareRuntimeDirectory(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EACCES' || e.code === 'EPERM' || e.code === 'EROFS') {
      throw new FaithdError(
        'NO_PERMISSION',
        `cannot create the runtime directory ${dir}: ${e.code} (set runtimeDirectory: to a directory this user may write)`,
        { cause: err },
      );
    }
    throw new FaithdError('RUNTIME_DIRECTORY', `cannot create the runtime directory ${dir}: ${e.message}`, { cause: err });
  }
}

/** Fails when a daemon already answers on the socket; removes a socket file nobody serves. */
async function refuseIfRunning(path: string): Promise<void> {
  try {
    const response = await request(path, { cmd: 'status' }, 3_000);
    const pid = response.ok && 'status' in response ? response.status.pid : 'unknown';
    throw new FaithdError('ALREADY_RUNNING', `faithd6 is already running (pid ${pid}, control socket ${path})`);
  } catch (err) {
    if (!(err instanceof FaithdError) || err.code !== 'NOT_RUNNING') throw err;
  }
  try {
    unlinkSync(path);
  } catch {
    // there was none
  }
}

/** Removes the pidfile only if it still names this process. */
function removeOwnPidfile(path: string): void {
  try {
    if (readFileSync(path, 'utf8').trim() === String(process.pid)) unlinkSync(path);
  } catch {
    // none
  }
}
