/**
 * Collecting what is wrong with a config file: errors and warnings, each prefixed with
 * file:line:col and the key path, listed in file order and capped for hostile files.
 */
import { isScalar, type LineCounter, type ParsedNode, type Scalar, type YAMLMap, type YAMLSeq } from 'yaml';
import { ConfigError } from '../errors.js';

/** Errors reported before giving up, and warnings listed one by one. */
export const MAX_PROBLEMS = 100;

/** Stops the walk once the report holds enough errors (or one that makes going on pointless). */
export class TooManyProblems extends Error {}

/** A node with its aliases followed. */
export type Value = Scalar.Parsed | YAMLMap.Parsed | YAMLSeq.Parsed;

/** A value in the document, with the key path and offset that messages about it use. */
export interface Field {
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
export class Report {
  private readonly errors: Located[] = [];
  private readonly warnings: Located[] = [];
  private moreErrors = false;
  private moreWarnings = 0;
  /** Key paths errors were reported at, so later checks can skip what is already wrong. */
  private readonly errorPaths: string[] = [];

  constructor(
    private readonly file: string,
    private readonly lineCounter: LineCounter,
  ) {}

  get hasErrors(): boolean {
    return this.errors.length > 0;
  }

  /** Whether no error was reported at `path` or inside it (`''`: anywhere). */
  clean(path: string): boolean {
    if (path === '') return !this.hasErrors;
    return !this.errorPaths.some((p) => p === path || p.startsWith(`${path}.`) || p.startsWith(`${path}[`));
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
    this.errorPaths.push(path);
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

/** A key path one key deeper. */
export function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

/** A key's name for key paths; `?` for a key that is a list or a mapping. */
export function keyName(key: ParsedNode): string {
  return isScalar(key) ? String(key.value) : '?';
}
