import { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { FaithdError } from '../errors.js';
import { verb, type CliContext } from './context.js';
import { daemonReload, daemonStatus } from './daemon-control.js';

/** `faithd6 reload`: validate the file, then have the daemon apply it, and say what changed. */
export function reloadCommand(ctx: CliContext): Command {
  return verb('reload', 'check the config file, then have the running daemon apply it; print what changed')
    .addHelpText(
      'after',
      `
An invalid file is refused before the daemon hears of it: it keeps its config. Established
connections are never dropped; new rules, limits, timeouts and the log level apply to new
connections; added ports get workers, removed ports drain. Prefixes, route mode, user and
runtimeDirectory need a restart.
Exit status: 0 applied, 1 the daemon refused it, 3 not running, 78 bad config.`,
    )
    .action(async (options: { config: string }) => {
      const { config } = await loadConfig(options.config);
      const dir = config.runtimeDirectory;
      const running = await daemonStatus(dir);
      if (running.config !== config.file) {
        ctx.stderr.write(`warning: the daemon reads ${running.config}, not ${config.file}\n`);
      }
      const outcome = await daemonReload(dir);
      if (!outcome.ok) throw new FaithdError('RELOAD_REFUSED', `the daemon kept its config: ${outcome.error ?? 'unknown error'}`);
      ctx.stdout.write(outcome.changes.length === 0 ? 'reloaded: no changes\n' : `reloaded:\n${outcome.changes.map((c) => `  ${c}\n`).join('')}`);
      for (const warning of outcome.warnings) ctx.stderr.write(`warning: ${warning}\n`);
    });
}
