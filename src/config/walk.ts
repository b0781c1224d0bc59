/**
 * Validation by the schema: walks the YAML document along schema.ts, reading each value with
 * the reader its schema node calls for and reporting at the node it is about (file:line:col,
 * key path, what was expected, did-you-mean). Defaults are filled in from the schema. The walk
 * goes on past an error so that one run names every problem; a value that is wrong is left out
 * of the result, and the report remembers where errors were (for semantic.ts).
 */
import { isAlias, isMap, isScalar, isSeq, type Alias, type ParsedNode, type Scalar } from 'yaml';
import { TranslationPrefix, formatIPv4, parseIPv4, parseListenAddress, parseNetwork4, parseNetwork6 } from '../net/address.js';
import { formatDuration, MAX_DURATION, parseDuration } from './duration.js';
import { join, keyName, type Field, type Report, type Value } from './report.js';

/** A schema node: JSON Schema with faithd6's `x-` annotations (see schema.ts); TypeBox's types are these. */
export type SchemaNode = object;
type Node = Readonly<Record<string, unknown>>;

/** The parts of a schema node the walker reads. */
export const schemaOf = {
  properties: (node: SchemaNode): Readonly<Record<string, SchemaNode>> => ((node as Node).properties ?? {}) as Record<string, SchemaNode>,
  required: (node: SchemaNode): readonly string[] => ((node as Node).required ?? []) as string[],
  isObject: (node: SchemaNode): boolean => (node as Node).type === 'object',
  isList: (node: SchemaNode): boolean => (node as Node).type === 'array' || (node as Node)['x-list'] === 'one-or-many',
  /** A list's item schema. */
  item: (node: SchemaNode): SchemaNode =>
    ((node as Node)['x-list'] === 'one-or-many' ? ((node as Node).anyOf as SchemaNode[])[0] : (node as Node).items) as SchemaNode,
  choices: (node: SchemaNode): readonly string[] | undefined => (node as Node).enum as string[] | undefined,
  format: (node: SchemaNode): string | undefined => (node as Node)['x-format'] as string | undefined,
  /** A standard keyword or an annotation. */
  get: (node: SchemaNode, keyword: string): unknown => (node as Node)[keyword],
};

/** A duration's bounds from its annotations, in milliseconds. */
function durationBounds(schema: SchemaNode): { positive: boolean; max: number } {
  const node = schema as Node;
  return { positive: node['x-positive'] === true, max: parseDuration((node['x-max'] as string | undefined) ?? MAX_DURATION) };
}

/** A node's default value as the config holds it (durations in ms); undefined when it has none. */
export function defaultOf(schema: SchemaNode): unknown {
  const node = schema as Node;
  if (schemaOf.isObject(node)) {
    if (node.default === undefined) return undefined;
    const value: Record<string, unknown> = {};
    for (const [name, child] of Object.entries(schemaOf.properties(node))) {
      const fallback = defaultOf(child);
      if (fallback !== undefined) value[name] = fallback;
    }
    return value;
  }
  if (schemaOf.format(node) === 'duration') return parseDuration(node.default as string);
  // Lists are copied: a default is never shared between configs.
  return Array.isArray(node.default) ? [...(node.default as unknown[])] : node.default;
}

/** What a node should hold, for "expected X, found Y". */
export function expectedOf(schema: SchemaNode): string {
  const node = schema as Node;
  if (typeof node['x-expected'] === 'string') return node['x-expected'];
  if (schemaOf.isObject(node)) {
    const names = Object.keys(schemaOf.properties(node));
    const required = schemaOf.required(node);
    const title = String(node.description);
    if (required.length === 0) return `a mapping of ${title} (${names.join(', ')})`;
    const optional = names.filter((name) => !required.includes(name));
    return `${title}: a mapping with ${required.join(', ')}${optional.length === 0 ? '' : ` and optionally ${optional.join(' and ')}`}`;
  }
  if (node['x-list'] === 'one-or-many') return `${expectedOf(schemaOf.item(node))}, or a list of them`;
  if (node.type === 'array') return `a list of ${expectedOf(schemaOf.item(node))}`;
  if (schemaOf.format(node) === 'duration') return 'a duration such as 10s, 5m or 1h30m';
  const choices = schemaOf.choices(node);
  if (choices !== undefined) return `one of: ${choices.join(', ')}`;
  if (node.type === 'integer') return `an integer from ${String(node.minimum)} to ${String(node.maximum)}`;
  return 'a string';
}

/** What a required key should hold, for "required key is missing (expected X)". */
function requiredOf(schema: SchemaNode): string {
  const node = schema as Node;
  const choices = schemaOf.choices(node);
  if (choices !== undefined) return `${choices.slice(0, -1).join(', ')} or ${choices.at(-1) as string}`;
  if (node.type === 'integer') return `${expectedOf(node)}, ${String(node.description)}`;
  return String(node.description);
}

/** Readers of `x-format` strings: each returns the canonical value or throws a message. */
const FORMATS: Readonly<Record<string, (text: string) => string>> = {
  'translation-prefix': (text) => TranslationPrefix.parse(text).text,
  network6: (text) => parseNetwork6(text).text,
  network4: (text) => parseNetwork4(text).text,
  'listen-address': (text) => parseListenAddress(text).text,
  'ipv4-address': (text) => {
    const address = parseIPv4(text);
    if (address === undefined) throw new Error(`"${text}" is not an IPv4 address`);
    return formatIPv4(address);
  },
  'user-name': (text) => {
    // POSIX portable user names (useradd's own rule), so nothing odd reaches getpwnam.
    if (/^[a-z_][a-z0-9_-]{0,31}$/i.test(text)) return text;
    throw new Error(`"${text}" is not a user name (letters, digits, _ and -, at most 32)`);
  },
  'bird-symbol': (text) => {
    // A BIRD symbol (its lexer's: a letter or _, then letters, digits and _): nothing else can
    // name a protocol, and nothing else reaches BIRD's command line.
    if (/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(text)) return text;
    throw new Error(`"${text}" is not a BIRD protocol name (a letter or _, then letters, digits and _)`);
  },
  'absolute-path': (text) => {
    if (text.startsWith('/') && !text.includes('\0')) return text.replace(/\/+$/, '') || '/';
    throw new Error(`${JSON.stringify(text)} is not an absolute path`);
  },
};

/** Walks one document; `fields` keeps every value met, by key path, for semantic checks. */
export class Walker {
  readonly fields = new Map<string, Field>();

  constructor(
    private readonly report: Report,
    private readonly targets: ReadonlyMap<Alias, ParsedNode>,
  ) {}

  /** The value at `field` as `node` describes it; undefined (after reporting why) when it is wrong. */
  walk(schema: SchemaNode, field: Field): unknown {
    const node = schema as Node;
    this.fields.set(field.path, field);
    if (schemaOf.isObject(node)) return this.object(node, field);
    if (schemaOf.isList(node)) {
      const items = this.list(field, expectedOf(node), node['x-list'] === 'one-or-many', node.type === 'array' && node.minItems === undefined);
      if (items === undefined) return undefined;
      const item = schemaOf.item(node);
      return items.map((child) => this.walk(item, child));
    }
    const format = schemaOf.format(node);
    if (format === 'duration') return this.duration(field, durationBounds(node));
    const choices = schemaOf.choices(node);
    if (choices !== undefined) return this.oneOf(field, choices);
    if (node.type === 'integer') return this.integer(field, node.minimum as number, node.maximum as number);
    const text = this.string(field, expectedOf(node));
    if (text === undefined || format === undefined) return text;
    try {
      return (FORMATS[format] as (text: string) => string)(text);
    } catch (err) {
      this.report.error(field, (err as Error).message);
      return undefined;
    }
  }

  /** A mapping: its known keys walked, defaults for the absent ones; unknown keys reported. */
  private object(node: SchemaNode, field: Field): Record<string, unknown> | undefined {
    const properties = schemaOf.properties(node);
    const required = schemaOf.required(node);
    const keys = Object.fromEntries(Object.entries(properties).map(([name, child]) => [name, required.includes(name) ? requiredOf(child) : undefined]));
    const found = this.mapping(field, expectedOf(node), keys);
    if (found === undefined) return undefined;
    const value: Record<string, unknown> = {};
    for (const [name, child] of Object.entries(properties)) {
      const at = found[name];
      const read = at === undefined ? defaultOf(child) : this.walk(child, at);
      if (read !== undefined) value[name] = read;
    }
    return value;
  }

  /** The node an alias stands for (Structure resolved every alias, or the walk never starts). */
  follow(node: ParsedNode): Value {
    return (isAlias(node) ? this.targets.get(node) : node) as Value;
  }

  /**
   * Reads a mapping whose allowed keys are those of `keys`; a key whose entry is a string is
   * required, and the string says what it should hold. Returns the known fields present
   * (a missing required key is reported and simply absent), or undefined if not a mapping.
   */
  private mapping(field: Field, expected: string, keys: Record<string, string | undefined>): Partial<Record<string, Field>> | undefined {
    const node = field.node;
    if (!isMap(node)) {
      this.report.error(field, `expected ${expected}, found ${shown(node)}`);
      return undefined;
    }
    const allowed = Object.keys(keys);
    const found: Partial<Record<string, Field>> = {};
    for (const pair of node.items) {
      const key = this.follow(pair.key);
      const name = keyName(key);
      const keyOffset = pair.key.range[0];
      if (!isScalar(key) || !allowed.includes(name)) {
        const label = isScalar(key) ? JSON.stringify(name) : shown(key);
        this.report.errorAt(keyOffset, join(field.path, name), `unknown key ${label}${suggest(name, allowed)}; expected one of: ${allowed.join(', ')}`);
        // Unknown keys do not stop the walk: the caller goes on checking the keys it knows.
        continue;
      }
      const value = pair.value === null ? null : this.follow(pair.value);
      // A key with nothing after it: point at the key, not at the end of the line.
      const empty = value === null || (isScalar(value) && value.source === '');
      found[name] = {
        node: value,
        path: join(field.path, name),
        offset: empty ? keyOffset : (pair.value as ParsedNode).range[0],
      };
    }
    for (const name of allowed) {
      const what = keys[name];
      if (what !== undefined && found[name] === undefined) {
        this.report.errorAt(field.offset, join(field.path, name), `required key is missing (expected ${what})`);
      }
    }
    return found;
  }

  /**
   * Reads a list; with `single`, one scalar stands for a list of one. Empty lists are
   * refused unless `mayBeEmpty` (an empty list of sources or ports would read as "none"
   * to some and "all" to others).
   */
  private list(field: Field, expected: string, single: boolean, mayBeEmpty: boolean): Field[] | undefined {
    const node = field.node;
    if (isSeq(node)) {
      if (node.items.length === 0 && !mayBeEmpty) {
        this.report.error(field, `expected ${expected}, found an empty list`);
        return undefined;
      }
      return node.items.map((item, index) => ({
        node: this.follow(item),
        path: `${field.path}[${index}]`,
        offset: item.range[0],
      }));
    }
    if (single && scalarValue(node) != null) return [field];
    this.report.error(field, `expected ${expected}, found ${shown(node)}`);
    return undefined;
  }

  private string(field: Field, expected: string): string | undefined {
    const value = scalarValue(field.node);
    if (typeof value === 'string') return value;
    this.report.error(field, `expected ${expected}, found ${shown(field.node)}`);
    return undefined;
  }

  private oneOf(field: Field, choices: readonly string[]): string | undefined {
    const value = scalarValue(field.node);
    if ((choices as readonly unknown[]).includes(value)) return value as string;
    this.report.error(field, `expected one of: ${choices.join(', ')}; found ${shown(field.node)}`);
    return undefined;
  }

  private integer(field: Field, min: number, max: number): number | undefined {
    const value = scalarValue(field.node);
    const expected = `an integer from ${min} to ${max}`;
    if (Number.isInteger(value)) {
      if ((value as number) >= min && (value as number) <= max) return value as number;
      this.report.error(field, `${sourceOf(field.node as Scalar)} is out of range (expected ${expected})`);
      return undefined;
    }
    const hint = /^\d+$/.test(String(value)) ? ' (write numbers without quotes)' : '';
    this.report.error(field, `expected ${expected}, found ${shown(field.node)}${hint}`);
    return undefined;
  }

  /** A duration in ms, more than 0 if `positive`, at most `max`. */
  private duration(field: Field, { positive, max }: { positive: boolean; max: number }): number | undefined {
    const value = scalarValue(field.node);
    if (typeof value !== 'string' && typeof value !== 'number') {
      this.report.error(field, `expected a duration such as 10s, 5m or 1h30m, found ${shown(field.node)}`);
      return undefined;
    }
    let ms: number;
    try {
      ms = parseDuration(value);
    } catch (err) {
      this.report.error(field, (err as Error).message);
      return undefined;
    }
    const source = sourceOf(field.node as Scalar);
    if (positive && ms === 0) {
      this.report.error(field, `${source} is too short (expected more than 0)`);
      return undefined;
    }
    if (ms > max) {
      const why = max === parseDuration(MAX_DURATION) ? ', the longest timer Node.js can run' : '';
      this.report.error(field, `${source} is too long (expected at most ${formatDuration(max)}${why})`);
      return undefined;
    }
    return ms;
  }
}

/** The value of a scalar node; undefined for anything else. */
function scalarValue(node: Value | null): unknown {
  return isScalar(node) ? node.value : undefined;
}

/** How a found value reads in "expected X, found Y". */
function shown(node: Value | null): string {
  if (isMap(node)) {
    // `- 2001:db8::` is YAML for the mapping {"2001:db8:": null}: a plain value cannot end in ":".
    const key = scalarValue(node.items.length === 1 ? (node.items[0] as { key: Value }).key : null);
    const empty = scalarValue((node.items[0]?.value ?? null) as Value | null) == null;
    if (typeof key === 'string' && key.endsWith(':') && empty) {
      return `a mapping (YAML reads ${key}: as a key because it ends in a colon; put it in quotes: "${key}:")`;
    }
    return 'a mapping';
  }
  if (isSeq(node)) return 'a list';
  const value = scalarValue(node);
  if (value == null) return 'nothing';
  const scalar = node as Scalar;
  switch (typeof value) {
    case 'string':
      return `${JSON.stringify(value)} (a string)`;
    case 'number':
      return `${sourceOf(scalar)} (a number)`;
    case 'boolean':
      return `${sourceOf(scalar)} (a boolean)`;
    default:
      return `${sourceOf(scalar)} (a ${String(scalar.tag).replace('tag:yaml.org,2002:', '!!')} value)`;
  }
}

/** The scalar as written (`0x10`, not 16), for messages. */
function sourceOf(node: Scalar): string {
  return typeof node.value === 'string' ? JSON.stringify(node.value) : String(node.source);
}

/** " (did you mean "x"?)" when `name` is a near miss of an allowed key. */
function suggest(name: string, allowed: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of allowed) {
    // Cannot be nearer than the difference in length; skipping spares a quadratic loop on a huge key.
    if (Math.abs(name.length - candidate.length) >= bestDistance) continue;
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best === undefined ? '' : ` (did you mean "${best}"?)`;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] as number;
}
