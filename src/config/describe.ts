import { TranslationPrefix, formatIPv4, formatIPv6, parseNetwork4 } from '../net/address.js';
import { formatDuration } from './duration.js';
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
  lines.push(
    config.route === 'manage'
      ? 'route: manage (faithd6 adds and removes "local PREFIX dev lo" itself)'
      : 'route: external (the local routes for the prefixes are set up outside faithd6)',
  );
  lines.push('services:');
  for (const s of config.services) {
    const workers = `${s.workers} worker${s.workers === 1 ? '' : 's'}`;
    lines.push(`  port ${s.port} -> backend port ${s.backendPort}, ${workers}`);
  }
  lines.push('rules (in order, the first match wins):');
  config.rules.forEach((rule, index) => lines.push(`  ${index + 1}. ${describeRule(rule)}`));
  lines.push('  otherwise: deny');
  const t = config.timeouts;
  lines.push(
    `timeouts: connect ${formatDuration(t.connect)}, idle ${formatDuration(t.idle)}, ` +
      `half-closed ${formatDuration(t.halfClosed)}, drain ${formatDuration(t.drain)}`,
  );
  const l = config.limits;
  const rate = l.newConnectionsPerSecond === 0 ? 'no rate limit' : `${l.newConnectionsPerSecond} new/s`;
  lines.push(
    `limits (each worker): ${l.connectionsPerWorker} connections, ${l.pendingConnects} pending connects; ` +
      `per source /${l.sourcePrefixLength}: ${l.connectionsPerSource} connections, ${l.pendingConnectsPerSource} pending, ${rate}; ` +
      `per backend: ${l.connectionsPerBackend} connections`,
  );
  lines.push(`log level: ${config.log.level}`);
  lines.push(`workers run as: ${config.user ?? 'faithd6 if that user exists, else nobody'} (when started as root)`);
  lines.push(`runtime directory: ${config.runtimeDirectory} (pidfile and control socket)`);
  if (warnings.length === 0) {
    lines.push('warnings: none');
  } else {
    lines.push('warnings:');
    for (const warning of warnings) lines.push(`  ${warning}`);
  }
  return `${lines.join('\n')}\n`;
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
