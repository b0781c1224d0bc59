/** Every failure faithd6 reports, by stable code; the CLI maps codes to exit statuses. */
export type ErrorCode =
  | 'CONFIG' // the configuration file is missing, unreadable or invalid
  | 'NO_PERMISSION' // an operation needs privileges the process does not have
  | 'NOT_RUNNING' // the daemon is not running (status, stop, reload)
  | 'ADDRESS_IN_USE' // a service port is taken by another process
  | 'ROUTE' // installing or removing a local route failed
  | 'USAGE' // a command line that does not make sense
  | 'INTERNAL';

/** The base of every error faithd6 throws on purpose. */
export class FaithdError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FaithdError';
    this.code = code;
  }
}

/** A configuration problem; the message already names file, line, column and key. */
export class ConfigError extends FaithdError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CONFIG', message, options);
    this.name = 'ConfigError';
  }
}

/** Exit statuses, sysexits(3) and LSB init-script conventions. */
export const EXIT = {
  OK: 0,
  FAILURE: 1,
  USAGE: 64, // EX_USAGE
  NOT_RUNNING: 3, // LSB: program is not running (status)
  NO_PERMISSION: 77, // EX_NOPERM
  CONFIG: 78, // EX_CONFIG
} as const;

/** The exit status for an error thrown anywhere below the CLI. */
export function exitCodeFor(err: unknown): number {
  if (!(err instanceof FaithdError)) return EXIT.FAILURE;
  switch (err.code) {
    case 'CONFIG':
      return EXIT.CONFIG;
    case 'NO_PERMISSION':
      return EXIT.NO_PERMISSION;
    case 'NOT_RUNNING':
      return EXIT.NOT_RUNNING;
    case 'USAGE':
      return EXIT.USAGE;
    default:
      return EXIT.FAILURE;
  }
}
