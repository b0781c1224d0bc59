/** Every failure faithd6 reports, by stable code, with what it means; the CLI maps codes to exit statuses. */
export const ERROR_CODES = {
  CONFIG: 'the configuration file is missing, unreadable or invalid',
  NO_PERMISSION: 'an operation needs privileges the process does not have',
  NOT_RUNNING: 'the daemon is not running (status, stop, reload)',
  ADDRESS_IN_USE: 'a service port is taken by another process',
  ROUTE: 'installing or removing a local route failed',
  USAGE: 'a command line that does not make sense',
  ALREADY_RUNNING: 'start: a daemon already answers on the control socket',
  RUNTIME_DIRECTORY: 'the runtime directory cannot be created',
  LISTEN: 'a service port cannot be bound or listened on, for a reason other than the above',
  WORKER: 'a worker did not start listening',
  CONTROL: 'the control socket did not answer, or answered nonsense',
  START: 'the daemon exited, or did not become ready, before it was ready',
  STOP: 'the daemon did not stop in time',
  RELOAD_REFUSED: 'the daemon refused a reload and kept its config',
  NOT_TRANSLATED: 'translate: the address is in no prefix',
  BIRD: "BIRD's control socket cannot be reached, or BIRD refused a command (announce)",
  INTERNAL: 'a fault in faithd6 itself: any error that is not one of the above',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** The base of every error faithd6 throws on purpose. */
export class FaithdError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FaithdError';
    this.code = code;
  }
}

/**
 * A failure of the system below faithd6 (the kernel, libuv, a program it runs), named by the
 * system's own code (EADDRINUSE, ETIMEDOUT, ...), as Node names its errors. What an operator
 * sees is a FaithdError that wraps it as its cause.
 */
export class SystemError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SystemError';
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
