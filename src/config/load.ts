/**
 * Loading a config file: read it (read.ts), parse the YAML with positions (yaml.ts), validate
 * it by the schema (schema.ts, walk.ts), then the checks no schema can express (semantic.ts).
 */
import { LineCounter, type Document } from 'yaml';
import { ConfigError } from '../errors.js';
import { readConfigFile } from './read.js';
import { MAX_PROBLEMS, Report, TooManyProblems } from './report.js';
import { ConfigSchema } from './schema-data.js';
import { formatIPv4 } from '../net/address.js';
import { hostIPv4Addresses } from '../policy/access.js';
import { checkSemantics, type HostFacts } from './semantic.js';
import type { Config, LoadedConfig } from './types.js';
import { Structure, parseYaml, pathAt, refuseNonPrintable, yamlProblem } from './yaml.js';
import { Walker } from './walk.js';

export { MAX_ALIAS_NODES, MAX_NESTING } from './yaml.js';
export { MAX_PROBLEMS };

/**
 * Reads and validates a config file; every problem is a ConfigError naming file:line:col and key.
 * Files that are not regular, too large, writable by others or not UTF-8 are refused before
 * parsing (see read.ts).
 */
export async function loadConfig(file: string): Promise<LoadedConfig> {
  const ipv4 = hostIPv4Addresses().own.map(formatIPv4);
  return parseConfig(await readConfigFile(file), file, { ipv4 });
}

/**
 * Validates the YAML text of a config file (`file` is only used in messages), against the
 * facts of the host it is for when `host` has them (loadConfig gives this host's). Throws one
 * ConfigError listing every problem found (up to MAX_PROBLEMS), one per line, in file order;
 * returns the deeply frozen config and the warnings otherwise. The work is bounded by the
 * length of the text: nesting, alias expansion and the number of problems are capped.
 */
export function parseConfig(text: string, file: string, host: HostFacts = {}): LoadedConfig {
  refuseNonPrintable(text, file);
  const lineCounter = new LineCounter();
  const report = new Report(file, lineCounter);
  try {
    return validate(parseYaml(text, file, lineCounter), report, file, host);
  } catch (err) {
    if (err instanceof TooManyProblems) throw report.toError();
    throw err;
  }
}

function validate(doc: Document.Parsed, report: Report, file: string, host: HostFacts): LoadedConfig {
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
  const walker = new Walker(report, targets);
  const value = walker.walk(ConfigSchema, { node: walker.follow(doc.contents), path: '', offset: doc.contents.range[0] });
  if (value !== undefined && value !== null) checkSemantics(value, report, walker.fields, host);
  if (report.hasErrors) throw report.toError();
  const config = { file, ...(value as object) } as Config;
  return deepFreeze({ config, warnings: report.warningLines() });
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
