import { Command } from 'commander';
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

/** A verb with its description and the -c/--config option every verb but schema takes. */
export function verb(name: string, description: string, configHelp = 'config file'): Command {
  return new Command(name).description(description).option('-c, --config <file>', configHelp, DEFAULT_CONFIG);
}
