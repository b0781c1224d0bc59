/** Check: the config file loads, and what it holds. */
import type { LoadedConfig } from '../config/types.js';
import { plural, type Check } from './check.js';

export function configCheck({ config, warnings }: LoadedConfig): Check {
  const ports = config.services.map((s) => s.port).join(', ');
  return {
    ok: true,
    title: `config ${config.file}`,
    detail:
      `valid: ${plural(config.prefixes.length, 'prefix', 'prefixes')} (${config.prefixes.join(', ')}), ` +
      `${plural(config.services.length, 'service')} (port ${ports}), ${plural(config.rules.length, 'rule')}, route: ${config.route}`,
    notes: warnings.map((w) => `warning: ${w}`),
  };
}
