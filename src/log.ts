import { writeSync } from 'node:fs';
import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';

/**
 * The root logger: JSON lines on stdout (journald under systemd). No transports (they are
 * extra threads).
 */
export function createLogger(level: LevelWithSilent, bindings: Record<string, unknown> = {}): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid, ...bindings },
      timestamp: () => `,"time":"${isoNow()}"`,
      formatters: { level: (label) => ({ level: label }) },
    },
    stdoutByTurn(),
  );
}

let lastMs = -1;
let lastIso = '';

/** The time as pino's isoTime gives it, formatted once per millisecond: a worker closing many connections in one turn logs them all in the same few. */
function isoNow(): string {
  const ms = Date.now();
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}

/** The fields of the line every relayed connection ends with (src/worker/worker.ts). */
export interface CloseFields {
  readonly client: string;
  readonly dst: string;
  readonly backend: string;
  readonly up: number;
  readonly down: number;
  readonly ms: number;
  readonly end: string;
  readonly error: string | undefined;
}

/**
 * `logger.info(fields, msg)` for the one line a relayed connection writes, serialized here
 * rather than by pino's generic path: the same bytes into the same stream (a test compares
 * them), for the line written once per connection. Under churn, pino's write, its _asJson and
 * toISOString were 3.2 % of a worker's samples (perf); written here, one worker's
 * connections/s rose by 5 % (6,940 to 7,311, medians of 6 alternating runs).
 */
export function lineWriter(logger: Logger, msg: string): (fields: CloseFields) => void {
  // The logger's own stream, and its bindings as pino serialized them (`,"pid":1,"port":5999`).
  const own = logger as unknown as Record<symbol, unknown>;
  const stream = own[pino.symbols.streamSym] as DestinationStream;
  const afterTime = `"${own[pino.symbols.chindingsSym] as string},"client":`;
  const end = `,"msg":${JSON.stringify(msg)}}\n`;
  const text = JSON.stringify;
  return (f) => {
    if (!logger.isLevelEnabled('info')) return;
    const error = f.error === undefined ? '' : `,"error":${text(f.error)}`;
    stream.write(
      `{"level":"info","time":"${isoNow()}${afterTime}${text(f.client)},"dst":${text(f.dst)},"backend":${text(f.backend)},"up":${f.up},"down":${f.down},"ms":${f.ms},"end":${text(f.end)}${error}${end}`,
    );
  };
}

let shared: TurnWriter | undefined;

/** The process's one writer of stdout: every logger of a process shares it, and its order. */
function stdoutByTurn(): DestinationStream {
  if (shared === undefined) {
    const writer = new TurnWriter(1);
    // A process that exits (process.exit, the end of its work, an uncaught exception) writes
    // what its last turn logged first. Only a SIGKILL loses that turn's lines.
    process.on('exit', writer.flush);
    shared = writer;
  }
  return shared;
}

/** How long a write to a full pipe (journald behind) waits before it tries again. */
const FULL_WAIT_MS = 10;

/**
 * Writes the lines of one turn of the event loop in one write(2), at the end of that turn
 * (setImmediate): a worker closing many connections in one turn logs a line for each, and
 * wrote each with a system call of its own (2.6 % of its samples under churn, perf). A line is out before the loop
 * waits for anything again, so that no line lags behind what it reports; each write is
 * synchronous and whole: on a full pipe (a non-blocking stdout, journald behind), it waits and
 * tries again rather than drop a line.
 */
class TurnWriter implements DestinationStream {
  private readonly fd: number;
  private lines: string[] = [];

  constructor(fd: number) {
    this.fd = fd;
  }

  write(line: string): void {
    if (this.lines.length === 0) setImmediate(this.flush);
    this.lines.push(line);
  }

  readonly flush = (): void => {
    if (this.lines.length === 0) return;
    const data = Buffer.from(this.lines.length === 1 ? (this.lines[0] as string) : this.lines.join(''));
    this.lines = [];
    let done = 0;
    while (done < data.length) {
      try {
        done += writeSync(this.fd, data, done);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // Anything else (EPIPE: the reader is gone) leaves the lines nowhere to go; a process
        // that could not log must still relay.
        if (code !== 'EAGAIN' && code !== 'EINTR') return;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, FULL_WAIT_MS);
      }
    }
  };
}

export type { Logger, LevelWithSilent };
