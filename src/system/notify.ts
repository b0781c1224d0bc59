import { execFile } from 'node:child_process';

/** What the notifier logs through (a pino logger fits). */
export interface NotifyLog {
  warn(obj: object, msg: string): void;
}

/** sd_notify(3) messages to systemd, sent in order; every method returns at once. */
export interface Notifier {
  /** READY=1 (+ STATUS=): every listener accepts. */
  ready(status?: string): void;
  /** RELOADING=1 + MONOTONIC_USEC= (systemd ≥ 253 wants the timestamp; older ones ignore it). */
  reloading(): void;
  /** STATUS=: a one-line summary for `systemctl status`. */
  status(text: string): void;
  /** STOPPING=1: the graceful stop has begun. */
  stopping(): void;
  /** WATCHDOG=1: still alive. */
  watchdog(): void;
  /** Resolves when every message queued so far has been handed to systemd. */
  flush(): Promise<void>;
}

/** The program that sends; found on the PATH of the environment given to systemdNotifier. */
const BINARY = 'systemd-notify';
/**
 * systemd-notify 252 waits (up to 5 s, its own bound) for systemd to take a barrier after the
 * message; past this one the queue gives up on it, so a stuck send never stalls later messages.
 */
const SEND_TIMEOUT = 10_000;

/**
 * One line: a newline would start a new assignment (systemd shows STATUS= in `systemctl
 * status`), and a NUL cannot be passed in an argument at all.
 */
function oneLine(text: string): string {
  return text.replace(/[\r\n\0]+/g, ' ').trim();
}

/**
 * A notifier that runs `systemd-notify --pid=PID -- ASSIGNMENT…` once per message, one at a
 * time, or undefined when NOTIFY_SOCKET is unset (not started by systemd: nothing to tell).
 * The `systemd-notify` npm package can only say READY=1 and STATUS=, hence the binary itself.
 * A send that fails is logged once at warn and never throws.
 */
export function systemdNotifier(env: NodeJS.ProcessEnv = process.env, pid: number = process.pid, log?: NotifyLog): Notifier | undefined {
  const socket = env.NOTIFY_SOCKET;
  if (socket === undefined || socket === '') return undefined;
  let tail: Promise<void> = Promise.resolve();
  let warned = false;
  /** Set once the binary is found missing: spawning it again every watchdog tick is pointless. */
  let missing = false;

  const fail = (err: Error & { code?: unknown }, assignments: string[]): void => {
    if (warned) return;
    warned = true;
    log?.warn(
      { err: err.message, code: err.code, sent: assignments, socket, path: env.PATH },
      missing
        ? `cannot notify systemd: ${BINARY} is not on the PATH; no further notifications are sent`
        : `cannot notify systemd: ${BINARY} failed; further failures are not logged`,
    );
  };

  const send = (assignments: string[]): void => {
    tail = tail.then(
      () =>
        new Promise<void>((resolve) => {
          if (missing) return resolve();
          // --pid attributes the message to the supervisor (systemd-notify would otherwise
          // name itself or its parent); -- keeps any text from being read as an option.
          try {
            execFile(
              BINARY,
              [`--pid=${pid}`, '--', ...assignments],
              { env, timeout: SEND_TIMEOUT, killSignal: 'SIGKILL', windowsHide: true },
              (err) => {
                if (err) {
                  if ((err as NodeJS.ErrnoException).code === 'ENOENT') missing = true;
                  fail(err, assignments);
                }
                resolve();
              },
            );
          } catch (err) {
            // execFile throws at once on arguments it cannot pass (a NUL byte in the
            // environment): a rejected link would silence every later message.
            fail(err as Error, assignments);
            resolve();
          }
        }),
    );
  };

  return {
    ready(status) {
      send(status === undefined ? ['READY=1'] : ['READY=1', `STATUS=${oneLine(status)}`]);
    },
    reloading() {
      // uv_hrtime, behind process.hrtime, reads CLOCK_MONOTONIC: the clock systemd compares with.
      send(['RELOADING=1', `MONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`]);
    },
    status(text) {
      send([`STATUS=${oneLine(text)}`]);
    },
    stopping() {
      send(['STOPPING=1']);
    },
    watchdog() {
      send(['WATCHDOG=1']);
    },
    flush() {
      return tail;
    },
  };
}

/**
 * How often to send WATCHDOG=1, in ms: half of WATCHDOG_USEC, as sd_watchdog_enabled(3)
 * advises; undefined when systemd runs no watchdog for this process (WATCHDOG_USEC unset or
 * invalid, or WATCHDOG_PID naming another process).
 */
export function watchdogInterval(env: NodeJS.ProcessEnv = process.env, pid: number = process.pid): number | undefined {
  const usecText = env.WATCHDOG_USEC;
  if (usecText === undefined || !/^\d+$/.test(usecText)) return undefined;
  const usec = Number(usecText);
  if (usec <= 0 || !Number.isSafeInteger(usec)) return undefined;
  const pidText = env.WATCHDOG_PID;
  if (pidText !== undefined && (!/^\d+$/.test(pidText) || Number(pidText) !== pid)) return undefined;
  return Math.max(1, Math.floor(usec / 2 / 1000));
}
