/**
 * What a reload changes, derived from the schema: keys marked `x-reload: restart` keep their
 * running value (and the reload says so), and every other difference is named by its key path.
 * Lists whose items have an `x-key` (services, by port) are compared item by item.
 */
import { isDeepStrictEqual } from 'node:util';
import { formatDuration } from './duration.js';
import { ConfigSchema } from './schema-data.js';
import type { Config } from './types.js';
import { schemaOf, type SchemaNode } from './walk.js';

export interface ReloadPlan {
  /** The config to run: the new one, with the running value of every key a reload cannot change. */
  readonly config: Config;
  /** One line per difference, for the log and `faithd6 reload`. */
  readonly changes: string[];
  /** Why some differences were not applied. */
  readonly kept: string[];
}

/** Merges a newly loaded config into the running one, as a reload applies it. */
export function planReload(running: Config, loaded: Config): ReloadPlan {
  const config: Record<string, unknown> = { ...loaded };
  const kept: string[] = [];
  for (const [name, node] of Object.entries(ConfigSchema.properties)) {
    const key = name as keyof Config;
    if (schemaOf.get(node, 'x-reload') !== 'restart' || same(running[key], loaded[key])) continue;
    kept.push(`${name} is unchanged until faithd6 is restarted (${show(node, running[key])} stays; the file says ${show(node, loaded[key])})`);
    config[name] = running[key];
  }
  const next = config as Config;
  return { config: next, changes: describeChanges(running, next), kept };
}

/** Every difference between two configs, in the schema's order of keys. */
export function describeChanges(before: Config, after: Config): string[] {
  const changes: string[] = [];
  diff(ConfigSchema, '', before, after, changes);
  return changes;
}

function diff(node: SchemaNode, path: string, before: unknown, after: unknown, out: string[]): void {
  if (same(before, after)) return;
  if (schemaOf.isObject(node)) {
    for (const [name, child] of Object.entries(schemaOf.properties(node))) {
      diff(child, path === '' ? name : `${path}.${name}`, (before as Record<string, unknown>)[name], (after as Record<string, unknown>)[name], out);
    }
    return;
  }
  if (schemaOf.isList(node)) {
    const item = schemaOf.item(node);
    const key = schemaOf.get(item, 'x-key') as string | undefined;
    if (key === undefined) {
      out.push(`${path} changed (${(before as unknown[]).length} -> ${(after as unknown[]).length} ${path})`);
    } else {
      diffKeyed(item, key, before as Record<string, unknown>[], after as Record<string, unknown>[], out);
    }
    return;
  }
  out.push(`${path}: ${show(node, before)} -> ${show(node, after)}`);
}

/** Items matched by `key`: added, changed key by key, removed. */
function diffKeyed(item: SchemaNode, key: string, before: Record<string, unknown>[], after: Record<string, unknown>[], out: string[]): void {
  const properties = Object.entries(schemaOf.properties(item)).filter(([name]) => name !== key);
  const old = new Map(before.map((entry) => [entry[key], entry]));
  const now = new Set(after.map((entry) => entry[key]));
  for (const entry of after) {
    const name = `${key} ${String(entry[key])}`;
    const was = old.get(entry[key]);
    if (was === undefined) {
      out.push(`${name} added (${properties.map(([p, child]) => `${p} ${show(child, entry[p])}`).join(', ')})`);
      continue;
    }
    for (const [p, child] of properties) {
      if (!same(was[p], entry[p])) out.push(`${name}: ${p} ${show(child, was[p])} -> ${show(child, entry[p])}`);
    }
  }
  const removed = schemaOf.get(item, 'x-removed') as string | undefined;
  for (const entry of before) {
    if (!now.has(entry[key])) out.push(`${key} ${String(entry[key])} removed${removed === undefined ? '' : ` (${removed})`}`);
  }
}

/** A value as the file would write it: durations with units, lists joined. */
export function show(node: SchemaNode, value: unknown): string {
  if (value === null || value === undefined) return 'not set';
  if (schemaOf.format(node) === 'duration') return formatDuration(value as number);
  if (Array.isArray(value)) return value.map(String).join(', ');
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function same(a: unknown, b: unknown): boolean {
  return isDeepStrictEqual(a, b);
}
