import { pino, type Logger, type LevelWithSilent } from 'pino';

/**
 * The root logger: JSON lines written synchronously to stdout, so journald gets every line
 * and nothing is lost when a process dies. No transports (they are extra threads).
 */
export function createLogger(level: LevelWithSilent, bindings: Record<string, unknown> = {}): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid, ...bindings },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ dest: 1, sync: true }),
  );
}

export type { Logger, LevelWithSilent };
