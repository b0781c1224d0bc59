import { execFile } from 'node:child_process';
import sdNotify from 'systemd-notify';
import { SystemError } from '../errors.js';

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

/** The program that sends; found on the PATH of process.env. */
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

/** What the systemd-notify package says: READY=1 and STATUS=. */
interface PackageMessage {
  readonly ready: boolean;
  readonly status?: string;
}

/** One message: for the systemd-notify package, or assignments for the binary itself. */
type Message = PackageMessage | readonly string[];

function isAssignments(message: Message): message is readonly string[] {
  return Array.isArray(message);
}

/** What a message says, for the log line of a failed send. */
function assignments(message: Message): string[] {
  if (isAssignments(message)) return [...message];
  const { ready, status } = message;
  return [...(ready ? ['READY=1'] : []), ...(status === undefined ? [] : [`STATUS=${status}`])];
}

/** The systemd-notify package's own spawn of the binary, bounded like the other path. */
function sendWithPackage(message: PackageMessage, pid: number): Promise<void> {
  const options = { pid, ...(message.ready ? { ready: true } : {}), ...(message.status === undefined ? {} : { status: message.status }) };
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new SystemError('ETIMEDOUT', `${BINARY} took over ${SEND_TIMEOUT} ms`)), SEND_TIMEOUT);
  });
  return Promise.race([sdNotify(options).then(() => undefined), bound])
    .catch((err: unknown) => {
      // The package rejects with the binary's stderr (a string) when it exits non-zero.
      throw err instanceof Error ? err : new Error(`${BINARY} failed: ${String(err)}`);
    })
    .finally(() => clearTimeout(timer));
}

/** `systemd-notify --pid=PID -- ASSIGNMENT…` for what the package cannot say. */
function sendWithBinary(message: readonly string[], pid: number): Promise<void> {
  return new Promise((resolve, reject) => {
    // --pid attributes the message to the supervisor (systemd-notify would otherwise name
    // itself or its parent); -- keeps any text from being read as an option.
    execFile(BINARY, [`--pid=${pid}`, '--', ...message], { timeout: SEND_TIMEOUT, killSignal: 'SIGKILL', windowsHide: true }, (err) =>
      // The cast is for prefer-promise-reject-errors: execFile's error type is an Omit<> of Error.
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion
      err === null ? resolve() : reject(err as NodeJS.ErrnoException),
    );
  });
}

/**
 * The one notify interface of the daemon, or undefined when NOTIFY_SOCKET is unset (not started
 * by systemd: nothing to tell). READY=1 and STATUS= go through the `systemd-notify` package,
 * which runs `systemd-notify --ready --pid=PID --status=…` (so systemd also learns MAINPID);
 * RELOADING=1, STOPPING=1 and WATCHDOG=1, which the package cannot say, through the same binary
 * with `--pid=PID -- ASSIGNMENT…`. Both read process.env (NOTIFY_SOCKET, PATH) when they send.
 * Messages go one at a time, in order; a send that fails is logged once at warn and never throws.
 */
export function systemdNotifier(pid: number = process.pid, log?: NotifyLog): Notifier | undefined {
  const socket = process.env.NOTIFY_SOCKET;
  if (socket === undefined || socket === '') return undefined;
  let tail: Promise<void> = Promise.resolve();
  let warned = false;
  /** Set once the binary is found missing: spawning it again every watchdog tick is pointless. */
  let missing = false;

  const fail = (err: Error & { code?: unknown }, message: Message): void => {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') missing = true;
    if (warned) return;
    warned = true;
    log?.warn(
      { err: err.message, code: err.code, sent: assignments(message), socket, path: process.env.PATH },
      missing
        ? `cannot notify systemd: ${BINARY} is not on the PATH; no further notifications are sent`
        : `cannot notify systemd: ${BINARY} failed; further failures are not logged`,
    );
  };

  const send = (message: Message): void => {
    tail = tail.then(async () => {
      if (missing) return;
      try {
        await (isAssignments(message) ? sendWithBinary(message, pid) : sendWithPackage(message, pid));
      } catch (err) {
        fail(err as Error, message);
      }
    });
  };

  return {
    ready(status) {
      send(status === undefined ? { ready: true } : { ready: true, status: oneLine(status) });
    },
    reloading() {
      // uv_hrtime, behind process.hrtime, reads CLOCK_MONOTONIC: the clock systemd compares with.
      send(['RELOADING=1', `MONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`]);
    },
    status(text) {
      send({ ready: false, status: oneLine(text) });
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
