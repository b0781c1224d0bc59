import {
  Composer,
  Lexer,
  LineCounter,
  Parser,
  YAMLParseError,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  CST,
  type Alias,
  type Document,
  type ParsedNode,
  type Scalar,
  type YAMLError,
  type YAMLMap,
  type YAMLSeq,
} from 'yaml';
import {
  RFC6052_LENGTHS,
  TranslationPrefix,
  WELL_KNOWN_PREFIX,
  network4Within,
  parseNetwork4,
  parseNetwork6,
  type Network4,
  type Network6,
} from '../net/address.js';
import { ConfigError } from '../errors.js';
import { formatDuration, parseDuration } from './duration.js';
import { NON_GLOBAL_IPV4 } from '../net/non-global.js';
import { readConfigFile } from './read.js';
import {
  DEFAULTS,
  type Config,
  type LimitsConfig,
  type LoadedConfig,
  type LogConfig,
  type RuleConfig,
  type ServiceConfig,
  type TimeoutsConfig,
} from './types.js';

/** Collections nested deeper than this are refused before yaml builds them (it recurses per level). */
export const MAX_NESTING = 64;
/**
 * How many nodes aliases may stand for, in all, each alias replaced by its anchor's node with
 * the aliases in that expanded in turn (an alias of a scalar counts one).
 */
export const MAX_ALIAS_NODES = 10_000;
/** Errors reported before giving up, and warnings listed one by one. */
export const MAX_PROBLEMS = 100;

/**
 * Reads and validates a config file; every problem is a ConfigError naming file:line:col and key.
 * Files that are not regular, too large, writable by others or not UTF-8 are refused before
 * parsing (see read.ts).
 */
export async function loadConfig(file: string): Promise<LoadedConfig> {
  return parseConfig(await readConfigFile(file), file);
}

/**
 * Validates the YAML text of a config file (`file` is only used in messages). Throws one
 * ConfigError listing every problem found (up to MAX_PROBLEMS), one per line, in file order;
 * returns the deeply frozen config and the warnings otherwise. The work is bounded by the
 * length of the text: nesting, alias expansion and the number of problems are capped.
 */
export function parseConfig(text: string, file: string): LoadedConfig {
  refuseNonPrintable(text, file);
  const lineCounter = new LineCounter();
  const report = new Report(file, lineCounter);
  try {
    return validate(parseYaml(text, file, lineCounter), report, file);
  } catch (err) {
    if (err instanceof TooManyProblems) throw report.toError();
    throw err;
  }
}

function validate(doc: Document.Parsed, report: Report, file: string): LoadedConfig {
  // A document with syntax errors may be half-built: report the syntax and stop there.
  for (const error of doc.errors) {
    const at = pathAt(doc.contents, error.pos[0], '', '');
    report.errorAt(error.pos[0], at.path, yamlProblem(error, at.key));
  }
  const targets = new Structure(doc, report).aliasTargets();
  if (report.hasErrors) throw report.toError();
  for (const warning of doc.warnings) {
    report.warnAt(warning.pos[0], () => pathAt(doc.contents, warning.pos[0], '', '').path, warning.message);
  }
  if (doc.contents === null) {
    throw new ConfigError(`${file}:1:1: the file is empty; expected a mapping with at least prefixes, services and rules`);
  }
  const config = new Validator(report, file, targets).config(doc.contents);
  if (config === undefined || report.hasErrors) throw report.toError();
  return deepFreeze({ config, warnings: report.warningLines() });
}

/**
 * YAML 1.2 allows only printable characters (c-printable); a NUL or another control character
 * means a binary file or a broken editor, and is named where it is rather than parsed.
 */
function refuseNonPrintable(text: string, file: string): void {
  const match = /[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/u.exec(text);
  if (match === null) return;
  const before = text.slice(0, match.index);
  const line = before.split('\n').length;
  const col = match.index - before.lastIndexOf('\n');
  const code = `U+${(match[0].codePointAt(0) as number).toString(16).toUpperCase().padStart(4, '0')}`;
  const what = match[0] === '\0' ? `a NUL byte (${code})` : `the character ${code}`;
  throw new ConfigError(`${file}:${line}:${col}: ${what} is not allowed in YAML; is this a binary file?`);
}

/**
 * parseDocument, but refusing deep nesting while parsing: yaml's parser keeps open collections
 * on a stack, while its composer recurses once per level and overflows the call stack (or
 * worse: V8 has aborted the process) a few hundred levels down.
 */
function parseYaml(text: string, file: string, lineCounter: LineCounter): Document.Parsed {
  const parser = new Parser(lineCounter.addNewLine);
  lineCounter.addNewLine(0);
  const tokens: CST.Token[] = [];
  // Each alias stands for one node at least: more aliases than MAX_ALIAS_NODES are refused
  // before yaml builds a node for each (building hundreds of thousands takes seconds).
  let aliases = 0;
  let atScalar = false;
  for (const lexeme of new Lexer().lex(text)) {
    for (const token of parser.next(lexeme)) tokens.push(token);
    // After the scalar marker comes the scalar's source, which may begin with "*".
    if (atScalar) atScalar = false;
    else if (lexeme === CST.SCALAR) atScalar = true;
    else if (lexeme.startsWith('*') && ++aliases > MAX_ALIAS_NODES) {
      const { line, col } = lineCounter.linePos(parser.offset - lexeme.length);
      throw new ConfigError(`${file}:${line}:${col}: ${tooManyAliases}`);
    }
    // The stack holds the document, then one entry per open collection (and one for a pending value).
    if (parser.stack.length > MAX_NESTING + 2) {
      const { line, col } = lineCounter.linePos(parser.offset);
      throw new ConfigError(`${file}:${line}:${col}: lists and mappings nested more than ${MAX_NESTING} levels deep; a config needs a few`);
    }
  }
  for (const token of parser.end()) tokens.push(token);
  // uniqueKeys: false, as yaml's own check compares each key with every earlier one
  // (quadratic in a mapping's size); Structure checks keys with a Set instead.
  const composer = new Composer({ prettyErrors: false, uniqueKeys: false });
  let doc: Document.Parsed | undefined;
  // yaml makes an Error, with a stack trace, for each syntax error: garbage holds hundreds of
  // thousands, and capturing their stacks took seconds. Nothing here throws them, nor waits.
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    for (const next of composer.compose(tokens, true, text.length)) {
      if (doc === undefined) {
        doc = next;
        continue;
      }
      doc.errors.push(
        new YAMLParseError(
          [next.range[0], next.range[1]],
          'MULTIPLE_DOCS',
          'Source contains multiple documents; a config file is one document (remove this --- and what follows)',
        ),
      );
      break;
    }
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
  }
  // compose(tokens, forceDoc = true) always yields a document, even for empty text.
  return doc as Document.Parsed;
}

/**
 * One pass over the document as written: resolves each alias to its anchor (the last anchor
 * of that name before it, as yaml does), refuses aliases without one or inside their own
 * anchor, refuses duplicate keys, and bounds what aliases add to the document ("billion
 * laughs": ten aliases of ten aliases of ... expand exponentially) to MAX_ALIAS_NODES.
 * The walk below follows aliases, so its work is then bounded by the text's length.
 */
class Structure {
  private readonly targets = new Map<Alias, ParsedNode>();
  /** The last node seen so far with each anchor. */
  private readonly anchors = new Map<string, ParsedNode>();
  /** The size of each anchored node with its aliases expanded, once its end is reached. */
  private readonly sizes = new Map<ParsedNode, number>();
  /** Nodes the aliases so far stand for: each its anchor's size. */
  private expanded = 0;

  constructor(
    private readonly doc: Document.Parsed,
    private readonly report: Report,
  ) {}

  aliasTargets(): Map<Alias, ParsedNode> {
    this.size(this.doc.contents);
    return this.targets;
  }

  /** The node's size with aliases expanded; recursion is bounded by MAX_NESTING. */
  private size(node: ParsedNode | null): number {
    if (node === null) return 0;
    if (isAlias(node)) return this.alias(node);
    // Set before the children: yaml resolves an alias inside its anchor's node to that node.
    if (node.anchor !== undefined) this.anchors.set(node.anchor, node);
    let size = 1;
    if (isMap(node)) {
      const keys = new Set<unknown>();
      for (const pair of node.items) {
        size += this.size(pair.key) + this.size(pair.value);
        if (!isScalar(pair.key)) continue;
        if (keys.has(pair.key.value)) {
          const offset = pair.key.range[0];
          const at = pathAt(this.doc.contents, offset, '', '');
          this.report.errorAt(offset, at.path, yamlProblem({ code: 'DUPLICATE_KEY' } as YAMLError, at.key));
        }
        keys.add(pair.key.value);
      }
    } else if (isSeq(node)) {
      for (const item of node.items) size += this.size(item);
    }
    if (node.anchor !== undefined) this.sizes.set(node, size);
    return size;
  }

  private alias(alias: Alias.Parsed): number {
    const offset = alias.range[0];
    const target = this.anchors.get(alias.source);
    const size = target === undefined ? undefined : this.sizes.get(target);
    if (target === undefined || size === undefined) {
      const problem =
        target === undefined
          ? `alias *${alias.source} has no anchor &${alias.source} before it`
          : `alias *${alias.source} is inside its own anchor &${alias.source} (a structure that never ends)`;
      this.report.errorAt(offset, pathAt(this.doc.contents, offset, '', '').path, problem);
      return 1;
    }
    this.targets.set(alias, target);
    this.expanded += size;
    if (this.expanded > MAX_ALIAS_NODES) {
      this.report.errorAt(offset, pathAt(this.doc.contents, offset, '', '').path, tooManyAliases);
      throw new TooManyProblems();
    }
    return size;
  }
}

const tooManyAliases =
  `too many alias expansions: aliases stand for more than ${MAX_ALIAS_NODES} nodes in all ` + '(a "billion laughs" file?); write the values out instead';

/** Stops the walk once the report holds enough errors (or one that makes going on pointless). */
class TooManyProblems extends Error {}

/** Longest timer Node can run: setTimeout fires at once (with a warning) beyond 2^31-1 ms. */
const MAX_TIMEOUT = 24 * 86_400_000;
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const ROUTE_MODES = ['manage', 'external'] as const;
const PORT = 'an integer from 1 to 65535';

/** A node with its aliases followed. */
type Value = Scalar.Parsed | YAMLMap.Parsed | YAMLSeq.Parsed;

/** A value in the document, with the key path and offset that messages about it use. */
interface Field {
  /** null when the key is present with no value at all (`{port}`, `? port`). */
  readonly node: Value | null;
  readonly path: string;
  readonly offset: number;
}

interface Located {
  readonly offset: number;
  readonly text: string;
}

/** Collects errors and warnings, each prefixed with file:line:col and the key path. */
class Report {
  private readonly errors: Located[] = [];
  private readonly warnings: Located[] = [];
  private moreErrors = false;
  private moreWarnings = 0;

  constructor(
    private readonly file: string,
    private readonly lineCounter: LineCounter,
  ) {}

  get hasErrors(): boolean {
    return this.errors.length > 0;
  }

  error(field: Field, what: string): void {
    this.errorAt(field.offset, field.path, what);
  }

  warn(field: Field, what: string): void {
    this.warnAt(field.offset, field.path, what);
  }

  /** Throws TooManyProblems past MAX_PROBLEMS errors: a hostile file could hold millions. */
  errorAt(offset: number, path: string, what: string): void {
    if (this.errors.length === MAX_PROBLEMS) {
      this.moreErrors = true;
      throw new TooManyProblems();
    }
    this.errors.push({ offset, text: this.format(offset, path, what) });
  }

  /** `path` may be a function, called only for warnings that are listed (finding a path takes time). */
  warnAt(offset: number, path: string | (() => string), what: string): void {
    if (this.warnings.length === MAX_PROBLEMS) this.moreWarnings++;
    else this.warnings.push({ offset, text: this.format(offset, typeof path === 'string' ? path : path(), what) });
  }

  warningLines(): string[] {
    const more = this.moreWarnings === 0 ? [] : [`${this.file}: and ${this.moreWarnings} more warnings`];
    return [...inFileOrder(this.warnings), ...more];
  }

  toError(): ConfigError {
    const more = this.moreErrors ? [`${this.file}: stopped after ${MAX_PROBLEMS} errors; fix these first`] : [];
    return new ConfigError([...inFileOrder(this.errors), ...more].join('\n'));
  }

  private format(offset: number, path: string, what: string): string {
    const { line, col } = this.lineCounter.linePos(offset);
    return `${this.file}:${line}:${col}: ${path === '' ? '' : `${clip(path, 200)}: `}${clip(what, 400)}`;
  }
}

/** Long keys and values (a file can hold a 1 MiB string) are shown by their start and end. */
function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 100)} … ${text.slice(-90)}`;
}

function inFileOrder(items: readonly Located[]): string[] {
  // Array.prototype.sort is stable: problems at one offset keep the order they were found in.
  return [...items].sort((a, b) => a.offset - b.offset).map((item) => item.text);
}

/** Walks the document along the schema; each check reports at the node it is about. */
class Validator {
  /** Ports of the valid services, or undefined when a service was invalid (to avoid knock-on errors). */
  private servicePorts: Set<number> | undefined;
  private wellKnownPrefix = false;

  constructor(
    private readonly report: Report,
    private readonly file: string,
    private readonly targets: ReadonlyMap<Alias, ParsedNode>,
  ) {}

  config(contents: ParsedNode): Config | undefined {
    const root = this.mapping(
      { node: this.follow(contents), path: '', offset: contents.range[0] },
      'a mapping of settings (prefixes, services, rules, ...) at the top level',
      {
        prefixes: 'a list of translation prefixes such as 2001:db8:5999::/96',
        route: undefined,
        services: 'a list of services, each with a port',
        rules: 'a list of access rules; an empty list denies everything',
        timeouts: undefined,
        limits: undefined,
        log: undefined,
        user: undefined,
        runtimeDirectory: undefined,
      },
    );
    if (root === undefined) return undefined;
    const prefixes = this.prefixes(root.prefixes);
    const route = root.route === undefined ? DEFAULTS.route : this.oneOf(root.route, ROUTE_MODES);
    const services = this.services(root.services);
    const rules = this.rules(root.rules);
    const timeouts = this.timeouts(root.timeouts);
    const limits = this.limits(root.limits);
    const log = this.log(root.log);
    const user = root.user === undefined ? null : this.userName(root.user);
    const runtimeDirectory = root.runtimeDirectory === undefined ? DEFAULTS.runtimeDirectory : this.absolutePath(root.runtimeDirectory);
    if (
      prefixes === undefined ||
      route === undefined ||
      services === undefined ||
      rules === undefined ||
      timeouts === undefined ||
      limits === undefined ||
      log === undefined ||
      user === undefined ||
      runtimeDirectory === undefined
    ) {
      return undefined;
    }
    return { file: this.file, prefixes, route, services, rules, timeouts, limits, log, user, runtimeDirectory };
  }

  private prefixes(field: Field | undefined): string[] | undefined {
    if (field === undefined) return undefined;
    const items = this.list(field, 'a list of translation prefixes such as 2001:db8:5999::/96', true);
    if (items === undefined) return undefined;
    const accepted = new AcceptedPrefixes<{ prefix: TranslationPrefix; path: string }>();
    let ok = true;
    for (const item of items) {
      const text = this.string(item, 'a translation prefix such as 2001:db8:5999::/96');
      if (text === undefined) {
        ok = false;
        continue;
      }
      let prefix: TranslationPrefix;
      try {
        prefix = TranslationPrefix.parse(text);
      } catch (err) {
        this.report.error(item, (err as Error).message);
        ok = false;
        continue;
      }
      const other = accepted.overlapping(prefix.network);
      if (other !== undefined) {
        const relation = other.prefix.text === prefix.text ? 'repeats' : 'overlaps';
        this.report.error(item, `"${text}" ${relation} ${other.path} (${other.prefix.text}); prefixes must not overlap`);
        ok = false;
        continue;
      }
      accepted.add(prefix.network, { prefix, path: item.path });
      if (prefix.text === WELL_KNOWN_PREFIX) this.wellKnownPrefix = true;
    }
    return ok ? accepted.entries.map((a) => a.prefix.text) : undefined;
  }

  private services(field: Field | undefined): ServiceConfig[] | undefined {
    if (field === undefined) return undefined;
    const items = this.list(field, 'a list of services, each with a port', false);
    if (items === undefined) return undefined;
    const services: ServiceConfig[] = [];
    const seen = new Map<number, string>();
    let ok = true;
    for (const item of items) {
      const service = this.service(item, seen);
      if (service === undefined) ok = false;
      else services.push(service);
    }
    if (!ok) return undefined;
    this.servicePorts = new Set(services.map((s) => s.port));
    return services;
  }

  /** One service; `seen` maps the ports of earlier services to their key paths. */
  private service(item: Field, seen: Map<number, string>): ServiceConfig | undefined {
    const keys = this.mapping(item, 'a service: a mapping with port and optionally backendPort and workers', {
      port: `${PORT}, the port clients connect to`,
      backendPort: undefined,
      workers: undefined,
    });
    if (keys?.port === undefined) return undefined;
    const port = this.integer(keys.port, 1, 65535);
    const backendPort = keys.backendPort === undefined ? port : this.integer(keys.backendPort, 1, 65535);
    const workers = keys.workers === undefined ? DEFAULTS.workers : this.integer(keys.workers, 1, 64);
    if (port === undefined) return undefined;
    const first = seen.get(port);
    if (first !== undefined) {
      this.report.error(keys.port, `port ${port} is already a service (${first}); each port may appear once`);
      return undefined;
    }
    seen.set(port, item.path);
    if (backendPort === undefined || workers === undefined) return undefined;
    return { port, backendPort, workers };
  }

  private rules(field: Field | undefined): RuleConfig[] | undefined {
    if (field === undefined) return undefined;
    const items = this.list(field, 'a list of access rules (an empty list denies everything)', false, true);
    if (items === undefined) return undefined;
    if (items.length === 0) this.report.warn(field, 'no rules: every connection will be denied');
    const rules: RuleConfig[] = [];
    let ok = true;
    for (const item of items) {
      const rule = this.rule(item);
      if (rule === undefined) ok = false;
      else rules.push(rule);
    }
    return ok ? rules : undefined;
  }

  private rule(item: Field): RuleConfig | undefined {
    const keys = this.mapping(item, 'a rule: a mapping with action, to and optionally from and ports', {
      action: 'permit or deny',
      from: undefined,
      to: 'the IPv4 destinations the rule applies to, such as 192.0.2.10/32',
      ports: undefined,
    });
    if (keys === undefined) return undefined;
    const action = keys.action === undefined ? undefined : this.oneOf(keys.action, ['permit', 'deny'] as const);
    const from = keys.from === undefined ? ['::/0'] : this.networks(keys.from, 'an IPv6 network such as 2001:db8::/32', (t) => parseNetwork6(t).text);
    const destinations: { network: Network4; field: Field }[] = [];
    const to =
      keys.to === undefined
        ? undefined
        : this.networks(keys.to, 'an IPv4 network such as 192.0.2.0/24', (t, f) => {
            const network = parseNetwork4(t);
            destinations.push({ network, field: f });
            return network.text;
          });
    const ports = keys.ports === undefined ? [] : this.rulePorts(keys.ports);
    if (action === undefined || from === undefined || to === undefined || ports === undefined) return undefined;
    if (action === 'permit') this.warnAboutDestinations(destinations);
    return { action, from, to, ports };
  }

  private warnAboutDestinations(to: readonly { network: Network4; field: Field }[]): void {
    for (const { network, field } of to) {
      if (network.length === 0) {
        this.report.warn(field, 'permits every IPv4 destination: faithd6 is then a relay into your whole IPv4 network');
      }
      if (!this.wellKnownPrefix) continue;
      const overlapped = NON_GLOBAL_IPV4.filter(([range]) => network4Within(network, range) || network4Within(range, network)).map(
        ([range, name]) => `${range.text} (${name})`,
      );
      if (overlapped.length === 0) continue;
      const shown = overlapped.length > 3 ? `${overlapped.slice(0, 3).join(', ')} and ${overlapped.length - 3} more` : overlapped.join(', ');
      this.report.warn(
        field,
        `${network.text} overlaps non-global IPv4 space: ${shown}; RFC 6052 §3.1 forbids embedding ` +
          `non-global addresses in the well-known prefix ${WELL_KNOWN_PREFIX}: use a network-specific prefix for them`,
      );
    }
  }

  private rulePorts(field: Field): number[] | undefined {
    const items = this.list(field, `a service port or a list of them (${PORT})`, true);
    if (items === undefined) return undefined;
    const ports: number[] = [];
    let ok = true;
    for (const item of items) {
      const port = this.integer(item, 1, 65535);
      if (port === undefined) {
        ok = false;
      } else if (this.servicePorts !== undefined && !this.servicePorts.has(port)) {
        this.report.error(item, `port ${port} is not a service port (services: ${[...this.servicePorts].join(', ')}); add it to services or remove it here`);
        ok = false;
      } else {
        ports.push(port);
      }
    }
    return ok ? ports : undefined;
  }

  private networks(field: Field, expected: string, parse: (text: string, field: Field) => string): string[] | undefined {
    const items = this.list(field, `${expected}, or a list of them`, true);
    if (items === undefined) return undefined;
    const networks: string[] = [];
    let ok = true;
    for (const item of items) {
      const text = this.string(item, expected);
      if (text === undefined) {
        ok = false;
        continue;
      }
      try {
        networks.push(parse(text, item));
      } catch (err) {
        this.report.error(item, (err as Error).message);
        ok = false;
      }
    }
    return ok ? networks : undefined;
  }

  private timeouts(field: Field | undefined): TimeoutsConfig | undefined {
    const d = DEFAULTS.timeouts;
    if (field === undefined) return { ...d };
    const keys = this.mapping(field, 'a mapping of timeouts (connect, idle, halfClosed, drain)', {
      connect: undefined,
      idle: undefined,
      halfClosed: undefined,
      drain: undefined,
    });
    if (keys === undefined) return undefined;
    const connect = this.duration(keys.connect, d.connect, true, 10 * 60_000);
    const idle = this.duration(keys.idle, d.idle, true, MAX_TIMEOUT);
    const halfClosed = this.duration(keys.halfClosed, d.halfClosed, true, MAX_TIMEOUT);
    const drain = this.duration(keys.drain, d.drain, false, MAX_TIMEOUT);
    if (connect === undefined || idle === undefined || halfClosed === undefined || drain === undefined) {
      return undefined;
    }
    return { connect, idle, halfClosed, drain };
  }

  private limits(field: Field | undefined): LimitsConfig | undefined {
    const d = DEFAULTS.limits;
    if (field === undefined) return { ...d };
    const ranges: Record<keyof LimitsConfig, [number, number]> = {
      connectionsPerWorker: [1, 1_000_000],
      connectionsPerSource: [1, 1_000_000],
      sourcePrefixLength: [16, 128],
      pendingConnects: [1, 1_000_000],
      pendingConnectsPerSource: [1, 1_000_000],
      connectionsPerBackend: [1, 1_000_000],
      newConnectionsPerSecond: [0, 1_000_000],
    };
    const names = Object.keys(ranges) as (keyof LimitsConfig)[];
    const keys = this.mapping(
      field,
      `a mapping of limits (${names.join(', ')})`,
      Object.fromEntries(names.map((name) => [name, undefined])) as Record<keyof LimitsConfig, undefined>,
    );
    if (keys === undefined) return undefined;
    const limits: Record<string, number> = {};
    let ok = true;
    for (const name of names) {
      const value = keys[name] === undefined ? d[name] : this.integer(keys[name], ...ranges[name]);
      if (value === undefined) ok = false;
      else limits[name] = value;
    }
    return ok ? (limits as unknown as LimitsConfig) : undefined;
  }

  private log(field: Field | undefined): LogConfig | undefined {
    if (field === undefined) return { ...DEFAULTS.log };
    const keys = this.mapping(field, 'a mapping of log settings (level)', { level: undefined });
    if (keys === undefined) return undefined;
    const level = keys.level === undefined ? DEFAULTS.log.level : this.oneOf(keys.level, LOG_LEVELS);
    return level === undefined ? undefined : { level };
  }

  // ---- typed readers: each returns undefined after reporting why ----

  /** The node an alias stands for (Structure resolved every alias, or the walk never starts). */
  private follow(node: ParsedNode): Value {
    return (isAlias(node) ? this.targets.get(node) : node) as Value;
  }

  /**
   * Reads a mapping whose allowed keys are those of `keys`; a key whose entry is a string is
   * required, and the string says what it should hold. Returns the known fields present
   * (a missing required key is reported and simply absent), or undefined if not a mapping.
   */
  private mapping<K extends string>(field: Field, expected: string, keys: Record<K, string | undefined>): Partial<Record<K, Field>> | undefined {
    const node = field.node;
    if (!isMap(node)) {
      this.report.error(field, `expected ${expected}, found ${shown(node)}`);
      return undefined;
    }
    const allowed = Object.keys(keys) as K[];
    const found: Partial<Record<K, Field>> = {};
    for (const pair of node.items) {
      const key = this.follow(pair.key);
      const name = keyName(key);
      const keyOffset = pair.key.range[0];
      if (!isScalar(key) || !(allowed as string[]).includes(name)) {
        const label = isScalar(key) ? JSON.stringify(name) : shown(key);
        this.report.errorAt(keyOffset, join(field.path, name), `unknown key ${label}${suggest(name, allowed)}; expected one of: ${allowed.join(', ')}`);
        // Unknown keys do not stop the walk: the caller goes on checking the keys it knows.
        continue;
      }
      const value = pair.value === null ? null : this.follow(pair.value);
      // A key with nothing after it: point at the key, not at the end of the line.
      const empty = value === null || (isScalar(value) && value.source === '');
      found[name as K] = {
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
  private list(field: Field, expected: string, single: boolean, mayBeEmpty = false): Field[] | undefined {
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

  private userName(field: Field): string | undefined {
    const value = this.string(field, 'a user name such as faithd6');
    if (value === undefined) return undefined;
    // POSIX portable user names (useradd's own rule), so nothing odd reaches getpwnam.
    if (/^[a-z_][a-z0-9_-]{0,31}$/i.test(value)) return value;
    this.report.error(field, `"${value}" is not a user name (letters, digits, _ and -, at most 32)`);
    return undefined;
  }

  private absolutePath(field: Field): string | undefined {
    const value = this.string(field, 'an absolute directory path such as /run/faithd6');
    if (value === undefined) return undefined;
    if (value.startsWith('/') && !value.includes('\0')) return value.replace(/\/+$/, '') || '/';
    this.report.error(field, `${JSON.stringify(value)} is not an absolute path`);
    return undefined;
  }

  private oneOf<T extends string>(field: Field, choices: readonly T[]): T | undefined {
    const value = scalarValue(field.node);
    if ((choices as readonly unknown[]).includes(value)) return value as T;
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

  /** A duration in ms, more than 0 if `positive`, at most `max`; `fallback` when absent. */
  private duration(field: Field | undefined, fallback: number, positive: boolean, max: number): number | undefined {
    if (field === undefined) return fallback;
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
      const why = max === MAX_TIMEOUT ? ', the longest timer Node.js can run' : '';
      this.report.error(field, `${source} is too long (expected at most ${formatDuration(max)}${why})`);
      return undefined;
    }
    return ms;
  }
}

/**
 * Translation prefixes accepted so far, each found again in a few map lookups: comparing a new
 * prefix with every earlier one is quadratic, and a hostile file can hold thousands. Accepted
 * prefixes never overlap, so at most one contains a new prefix (and then none lies inside it);
 * otherwise the first one inside it is named, as a search of the list in order would.
 */
class AcceptedPrefixes<T> {
  readonly entries: T[] = [];
  /** Each accepted prefix under `length:bits`. */
  private readonly exact = new Map<string, T>();
  /** The first accepted prefix under each shorter (or equal) RFC 6052 prefix that contains it. */
  private readonly within = new Map<string, T>();

  overlapping(network: Network6): T | undefined {
    for (const length of RFC6052_LENGTHS) {
      if (length > network.length) break;
      const container = this.exact.get(bitsKey(network.base, length));
      if (container !== undefined) return container;
    }
    return this.within.get(bitsKey(network.base, network.length));
  }

  add(network: Network6, entry: T): void {
    this.entries.push(entry);
    this.exact.set(bitsKey(network.base, network.length), entry);
    for (const length of RFC6052_LENGTHS) {
      if (length > network.length) break;
      const key = bitsKey(network.base, length);
      if (!this.within.has(key)) this.within.set(key, entry);
    }
  }
}

/** The first `length` bits of an IPv6 address, as a map key. */
function bitsKey(address: bigint, length: number): string {
  return `${length}:${(address >> BigInt(128 - length)).toString(16)}`;
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

/** A key's name for key paths; `?` for a key that is a list or a mapping. */
function keyName(key: ParsedNode): string {
  return isScalar(key) ? String(key.value) : '?';
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

/**
 * The key path of the deepest node at `offset`, and the name of the last key on the way,
 * for syntax errors and YAML warnings (reported before the schema walk).
 */
function pathAt(node: ParsedNode | null, offset: number, path: string, key: string): { path: string; key: string } {
  if (isMap(node)) {
    for (const pair of node.items) {
      const name = keyName(pair.key);
      const childPath = join(path, name);
      // From the key to the end of its value: a tag or anchor before the value counts too.
      const end = (pair.value ?? pair.key).range[2];
      if (offset >= pair.key.range[0] && offset < end) {
        return covers(pair.key, offset) ? { path: childPath, key: name } : pathAt(pair.value, offset, childPath, name);
      }
    }
  } else if (isSeq(node)) {
    for (const [index, item] of node.items.entries()) {
      if (covers(item, offset)) return pathAt(item, offset, `${path}[${index}]`, key);
    }
  }
  return { path, key };
}

function covers(node: ParsedNode, offset: number): boolean {
  return node.range[0] <= offset && offset < node.range[2];
}

function yamlProblem(error: YAMLError, key: string): string {
  if (error.code === 'DUPLICATE_KEY') {
    return `duplicate key ${JSON.stringify(key)} (a key may appear only once in a mapping)`;
  }
  return `YAML syntax error: ${error.message}`;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
