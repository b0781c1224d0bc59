import type { Logger } from '../log.js';

/**
 * Log lines that a flood can produce (denials, limit hits, connect and accept failures) go
 * through this: the first `burst` lines of each interval are written, the rest are counted by
 * kind and summarised in one line when the interval ends. A scan cannot fill the journal.
 */
export class LogLimiter {
  private readonly log: Logger;
  private readonly burst: number;
  private readonly interval: number;
  private written = 0;
  private suppressed = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(log: Logger, burst = 20, interval = 10_000) {
    this.log = log;
    this.burst = burst;
    this.interval = interval;
  }

  /** Writes an info line, unless this interval's burst is used up; `kind` names it in the summary. */
  info(fields: object, msg: string, kind: string): void {
    this.timer ??= setTimeout(this.flush, this.interval).unref();
    if (this.written < this.burst) {
      this.written += 1;
      this.log.info(fields, msg);
      return;
    }
    this.suppressed.set(kind, (this.suppressed.get(kind) ?? 0) + 1);
  }

  /** Ends the interval: one summary line if anything was held back. */
  readonly flush = (): void => {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.suppressed.size > 0) {
      this.log.warn({ suppressed: Object.fromEntries(this.suppressed), seconds: this.interval / 1000 }, 'log lines suppressed (rate limit)');
    }
    this.written = 0;
    this.suppressed = new Map();
  };
}
