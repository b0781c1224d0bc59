import { Command } from 'commander';
import { describeConfig } from '../config/describe.js';
import { loadConfig } from '../config/load.js';
import { verb, type CliContext } from './context.js';

/** `faithd6 check`: validate a config file and say what it means. */
export function checkCommand(ctx: CliContext): Command {
  return verb('check', 'validate a config file and print what it means: prefixes, ports, rules in order')
    .option('-q, --quiet', 'print nothing when the file is valid')
    .addHelpText('after', '\nExit status: 0 valid, 78 invalid (the error names file:line:col and the key).')
    .action(async (options: { config: string; quiet?: boolean }) => {
      const loaded = await loadConfig(options.config);
      if (!options.quiet) ctx.stdout.write(describeConfig(loaded));
      else for (const warning of loaded.warnings) ctx.stderr.write(`warning: ${warning}\n`);
    });
}
