import { join } from 'node:path';

/** The pidfile in a runtime directory. */
export function pidfilePath(runtimeDirectory: string): string {
  return join(runtimeDirectory, 'faithd6.pid');
}

/** The control socket in a runtime directory. */
export function socketPath(runtimeDirectory: string): string {
  return join(runtimeDirectory, 'control.sock');
}
