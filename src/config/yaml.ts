/**
 * YAML reading with positions, bounded for hostile files: the text is parsed into a document
 * whose nodes keep their offsets, nesting and alias expansion are capped, duplicate keys and
 * aliases without anchors are refused, and syntax errors are named by their key path.
 */
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
  type YAMLError,
} from 'yaml';
import { ConfigError } from '../errors.js';
import { TooManyProblems, join, keyName, type Report } from './report.js';

/** Collections nested deeper than this are refused before yaml builds them (it recurses per level). */
export const MAX_NESTING = 64;
/**
 * How many nodes aliases may stand for, in all, each alias replaced by its anchor's node with
 * the aliases in that expanded in turn (an alias of a scalar counts one).
 */
export const MAX_ALIAS_NODES = 10_000;

/**
 * YAML 1.2 allows only printable characters (c-printable); a NUL or another control character
 * means a binary file or a broken editor, and is named where it is rather than parsed.
 */
export function refuseNonPrintable(text: string, file: string): void {
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
export function parseYaml(text: string, file: string, lineCounter: LineCounter): Document.Parsed {
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
export class Structure {
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

export const tooManyAliases =
  `too many alias expansions: aliases stand for more than ${MAX_ALIAS_NODES} nodes in all ` + '(a "billion laughs" file?); write the values out instead';

/**
 * The key path of the deepest node at `offset`, and the name of the last key on the way,
 * for syntax errors and YAML warnings (reported before the schema walk).
 */
export function pathAt(node: ParsedNode | null, offset: number, path: string, key: string): { path: string; key: string } {
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

export function yamlProblem(error: YAMLError, key: string): string {
  if (error.code === 'DUPLICATE_KEY') {
    return `duplicate key ${JSON.stringify(key)} (a key may appear only once in a mapping)`;
  }
  return `YAML syntax error: ${error.message}`;
}
