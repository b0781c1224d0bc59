/**
 * The validated configuration's types, derived from the one definition in schema.ts: the
 * file's shape with every default filled in, every list a list, durations in milliseconds,
 * networks and prefixes in canonical text. Plain data only, so the supervisor can hand it to
 * workers over IPC unchanged; workers compile it into matchers themselves. Every object is
 * frozen once validated.
 */
import { ConfigSchema } from './schema-data.js';
import type { ConfigInput } from './schema.js';
import { defaultOf } from './walk.js';

/** `T` with every key present (defaults filled in) and nothing writable. */
type Resolved<T> = T extends readonly (infer U)[] ? readonly Resolved<U>[] : T extends object ? { readonly [K in keyof T]-?: Resolved<T[K]> } : T;

export type Config = Resolved<ConfigInput> & {
  /** The file it was read from, for messages. */
  readonly file: string;
};
export type ServiceConfig = Config['services'][number];
export type RuleConfig = Config['rules'][number];
export type TimeoutsConfig = Config['timeouts'];
export type LimitsConfig = Config['limits'];
export type LogConfig = Config['log'];

/** The defaults of the keys that have one, from the schema. */
export const DEFAULTS = Object.fromEntries(
  Object.entries(ConfigSchema.properties).flatMap(([name, node]) => {
    const value = defaultOf(node);
    return value === undefined ? [] : [[name, value]];
  }),
) as Pick<Config, 'route' | 'timeouts' | 'limits' | 'log' | 'user' | 'runtimeDirectory'>;

/** What loading a file yields: the config, and warnings that do not stop it from running. */
export interface LoadedConfig {
  readonly config: Config;
  readonly warnings: readonly string[];
}
