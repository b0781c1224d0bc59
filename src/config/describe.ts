import { isDeepStrictEqual } from 'node:util';
import { TranslationPrefix, formatIPv4, formatIPv6, parseNetwork4 } from '../net/address.js';
import { show } from './diff.js';
import { ConfigSchema } from './schema-data.js';
import { defaultOf, schemaOf, type SchemaNode } from './walk.js';
import type { Config, LoadedConfig, RuleConfig } from './types.js';

/** A human summary of a validated config, for `faithd6 check`: what it will do, rule by rule. */
export function describeConfig(loaded: LoadedConfig): string {
  const { config, warnings } = loaded;
  const example = exampleIPv4(config);
  const lines = [`file: ${config.file}`, 'prefixes:'];
  for (const text of config.prefixes) {
    const translated = formatIPv6(TranslationPrefix.parse(text).toIPv6(example));
    lines.push(`  ${text}  e.g. ${formatIPv4(example)} -> ${translated}`);
  }
  lines.push(settingLine('route', config.route));
  lines.push('services:');
  for (const s of config.services) {
    const workers = `${s.workers} worker${s.workers === 1 ? '' : 's'}`;
    // Other service keys are shown as the schema has them, when they are not their default.
    const more = Object.entries(schemaOf.properties(schemaOf.item(ConfigSchema.properties.services)))
      .filter(([key, node]) => !['port', 'backendPort', 'workers'].includes(key) && !isDeepStrictEqual(defaultOf(node), (s as Record<string, unknown>)[key]))
      .map(([key, node]) => `, ${key} ${shownWithExplanation(node, (s as Record<string, unknown>)[key])}`);
    lines.push(`  port ${s.port} -> backend port ${s.backendPort}, ${workers}${more.join('')}`);
  }
  lines.push('rules (in order, the first match wins):');
  config.rules.forEach((rule, index) => lines.push(`  ${index + 1}. ${describeRule(rule)}`));
  lines.push('  otherwise: deny');
  // Every other setting as the schema has it, so that a new key is shown without an edit here.
  for (const name of Object.keys(ConfigSchema.properties)) {
    if (!DESCRIBED.has(name)) lines.push(settingLine(name, config[name as keyof Config]));
  }
  if (warnings.length === 0) {
    lines.push('warnings: none');
  } else {
    lines.push('warnings:');
    for (const warning of warnings) lines.push(`  ${warning}`);
  }
  return `${lines.join('\n')}\n`;
}

/** The keys described above in words of their own; the others are shown as the schema has them. */
const DESCRIBED = new Set(['prefixes', 'route', 'services', 'rules']);

/** `name: value (explanation)`, or for a mapping `name: key value, key value`. */
function settingLine(name: string, value: unknown): string {
  const node = ConfigSchema.properties[name as keyof typeof ConfigSchema.properties];
  if (!schemaOf.isObject(node)) return `${name}: ${shownWithExplanation(node, value)}`;
  const entries = Object.entries(schemaOf.properties(node)).map(
    ([key, child]) => `${key} ${shownWithExplanation(child, (value as Record<string, unknown>)[key])}`,
  );
  return `${name}: ${entries.join(', ')}`;
}

function shownWithExplanation(node: SchemaNode, value: unknown): string {
  const explanation = (schemaOf.get(node, 'x-explain') as Record<string, string> | undefined)?.[String(value)];
  return explanation === undefined ? show(node, value) : `${show(node, value)} (${explanation})`;
}

function describeRule(rule: RuleConfig): string {
  const from = rule.from.length === 1 && rule.from[0] === '::/0' ? 'any' : rule.from.join(', ');
  const ports = rule.ports.length === 0 ? 'any' : rule.ports.join(', ');
  return `${rule.action} from ${from} to ${rule.to.join(', ')} ports ${ports}`;
}

/**
 * An IPv4 address to show translated: a host the first permit rule reaches, so the example
 * is one the operator can try; a documentation address when nothing is permitted.
 */
function exampleIPv4(config: Config): number {
  const permit = config.rules.find((rule) => rule.action === 'permit');
  const documentation = 0xc0000201; // 192.0.2.1
  const first = permit?.to[0];
  if (first === undefined) return documentation;
  const network = parseNetwork4(first);
  // A very broad rule's first host (0.0.0.1) would make a misleading example.
  if (network.length < 8) return documentation;
  // Skip the network's own address when the network has hosts besides it.
  return network.length <= 30 ? network.base + 1 : network.base;
}
