import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig } from '../config/load.js';
import { DEFAULTS, type Config } from '../config/types.js';
import { request } from '../control/client.js';
import { pidfilePath, socketPath } from '../control/paths.js';
import type { DaemonStatus, ReloadOutcome } from '../control/protocol.js';
import type { StartReport } from '../daemon/daemon.js';
import { ConfigError, FaithdError, type ErrorCode } from '../errors.js';
import { commandLine, SUPERVISOR_TITLE } from '../system/proc.js';
import { packageRoot } from '../version.js';
import type { CliContext } from './context.js';

/** How long `start` waits for the daemon to report that it accepts. */
const START_TIMEOUT = 30_000;
/** Beyond the drain timeout, how long `stop` waits for the process to be gone. */
const STOP_GRACE = 15_000;

/**
 * The runtime directory to look for the daemon in: --runtime-dir, else the config file's. There
 * is no guess when the file is broken: a default directory could belong to another instance,
 * and `stop` must never stop the wrong daemon.
 */
export async function runtimeDirectoryOf(options: { config: string; runtimeDir?: string }): Promise<string> {
  if (options.runtimeDir !== undefined) return options.runtimeDir;
  try {
    return (await loadConfig(options.config)).config.runtimeDirectory;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    throw new ConfigError(`${err.message}\n(to reach the running daemon anyway, name its directory: --runtime-dir DIR)`, { cause: err });
  }
}

/** The running daemon's status; NOT_RUNNING when nothing answers on the control socket. */
export async function daemonStatus(dir: string): Promise<DaemonStatus> {
  const response = await request(socketPath(dir), { cmd: 'status' });
  if (!response.ok) throw new FaithdError('CONTROL', response.error);
  if (!('status' in response)) throw new FaithdError('CONTROL', 'the daemon answered something other than a status');
  return response.status;
}

/** Asks the running daemon to reload its config file and returns what it says. */
export async function daemonReload(dir: string): Promise<ReloadOutcome> {
  const response = await request(socketPath(dir), { cmd: 'reload' }, 60_000);
  if (!response.ok) throw new FaithdError('CONTROL', response.error);
  if (!('reload' in response)) throw new FaithdError('CONTROL', 'the daemon answered something other than a reload outcome');
  return response.reload;
}

/**
 * Starts `faithd6 run` in the background, in a session of its own, logging to `logFile`, and
 * resolves once it reports that every listener accepts. A daemon that cannot start reports
 * why over the IPC channel and exits; that reason becomes this error, with its exit status.
 */
export async function startInBackground(config: Config, logFile: string): Promise<{ pid: number; ports: readonly number[] }> {
  let out: number;
  try {
    out = openSync(logFile, 'a', 0o640);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const code: ErrorCode = e.code === 'EACCES' || e.code === 'EPERM' ? 'NO_PERMISSION' : 'START';
    throw new FaithdError(code, `cannot open the log file ${logFile}: ${e.code ?? e.message} (choose another with --log)`, { cause: err });
  }
  const child = spawn(process.execPath, [join(packageRoot(), 'bin', 'faithd6'), 'run', '-c', config.file], {
    detached: true,
    stdio: ['ignore', out, out, 'ipc'],
  });
  closeSync(out);
  try {
    const report = await new Promise<StartReport | { type: 'exit'; code: number | null; signal: string | null }>((resolve) => {
      const timer = setTimeout(() => resolve({ type: 'exit', code: null, signal: 'timeout' }), START_TIMEOUT);
      child.once('message', (message: StartReport) => {
        clearTimeout(timer);
        resolve(message);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        resolve({ type: 'exit', code, signal });
      });
    });
    if (report.type === 'started') return { pid: report.pid, ports: report.ports };
    if (report.type === 'start failed') {
      await exited(child.pid, 10_000);
      throw new FaithdError(report.code as ErrorCode, report.message);
    }
    if (report.signal === 'timeout') {
      child.kill('SIGTERM');
      throw new FaithdError('START', `faithd6 did not become ready within ${START_TIMEOUT / 1000} s (see ${logFile}); stopped it`);
    }
    throw new FaithdError('START', `faithd6 exited (${report.signal ?? `code ${report.code}`}) before it was ready; see ${logFile}`);
  } finally {
    if (child.connected) child.disconnect();
    child.unref();
  }
}

/**
 * Stops the daemon gracefully: SIGTERM to the process the control socket names, then waits
 * until it has exited (it drains first). With no answer on the socket, a pidfile is trusted only
 * if its process is really faithd6's supervisor: a stale pidfile naming an unrelated process
 * must never get that process killed.
 */
export async function stopDaemon(dir: string, ctx: CliContext): Promise<{ pid: number; seconds: number }> {
  let pid: number;
  let drain: number = DEFAULTS.timeouts.drain;
  try {
    const status = await daemonStatus(dir);
    pid = status.pid;
    drain = (await drainOf(status.config)) ?? drain;
  } catch (err) {
    if (!(err instanceof FaithdError) || err.code !== 'NOT_RUNNING') throw err;
    const fromFile = readPidfile(pidfilePath(dir));
    if (fromFile === undefined) throw err;
    if (!isFaithd6Supervisor(fromFile)) {
      unlinkQuietly(pidfilePath(dir));
      ctx.stderr.write(`removed a stale pidfile: pid ${fromFile} is not faithd6 (${commandLine(fromFile).join(' ') || 'no such process'}), left alone\n`);
      throw err;
    }
    pid = fromFile;
  }
  const started = Date.now();
  try {
    process.kill(pid, 'SIGTERM');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EPERM') {
      throw new FaithdError('NO_PERMISSION', `cannot signal faithd6 (pid ${pid}): permission denied`, { cause: err });
    }
    throw new FaithdError('NOT_RUNNING', `faithd6 (pid ${pid}) is already gone`, { cause: err });
  }
  if (!(await exited(pid, drain + STOP_GRACE))) {
    throw new FaithdError('STOP', `faithd6 (pid ${pid}) did not stop within ${(drain + STOP_GRACE) / 1000} s`);
  }
  return { pid, seconds: (Date.now() - started) / 1000 };
}

/** The drain timeout in the running daemon's config file, so stop waits long enough. */
async function drainOf(file: string): Promise<number | undefined> {
  try {
    return (await loadConfig(file)).config.timeouts.drain;
  } catch {
    return undefined;
  }
}

function readPidfile(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Whether `pid` is a faithd6 supervisor: its process title replaces its command line. */
function isFaithd6Supervisor(pid: number): boolean {
  return commandLine(pid).join(' ').startsWith(SUPERVISOR_TITLE);
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // gone
  }
}

/** Whether the process is gone within `timeout` ms (a zombie counts as gone). */
async function exited(pid: number | undefined, timeout: number): Promise<boolean> {
  if (pid === undefined) return true;
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      process.kill(pid, 0);
      if (/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))) return true;
    } catch {
      return true;
    }
    if (Date.now() >= deadline) return false;
    await sleep(50);
  }
}
