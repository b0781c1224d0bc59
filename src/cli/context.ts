import type { Writable } from 'node:stream';

/** The default config file, and what -c/--config falls back to. */
export const DEFAULT_CONFIG = '/etc/faithd6.yaml';

/** What a verb needs from its surroundings; main() builds it, tests can build their own. */
export interface CliContext {
  readonly stdout: Pick<Writable, 'write'>;
  readonly stderr: Pick<Writable, 'write'>;
  /** The exit status a verb leaves for main() to return; verbs that fail throw instead. */
  exitCode: number;
}
