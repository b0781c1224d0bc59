import { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { createLogger } from '../log.js';
import { runDaemon } from '../daemon/daemon.js';
import { forkWorker } from '../daemon/worker-process.js';
import { SUPERVISOR_TITLE } from '../system/proc.js';
import { verb, type CliContext } from './context.js';

/** `faithd6 run`: the daemon in the foreground (what systemd's ExecStart runs). */
export function runCommand(_ctx: CliContext): Command {
  return verb('run', 'run the translator in the foreground, logging JSON lines to stdout')
    .option(
      '--no-routes',
      "leave the local routes alone, whatever route: says (systemd's unit adds them with ExecStartPre=+faithd6 route up and removes them with ExecStopPost=+faithd6 route down)",
    )
    .addHelpText(
      'after',
      `
Signals: SIGTERM or SIGINT stop gracefully (stop accepting, drain open connections up to
timeouts.drain, then reset what is left); SIGHUP re-reads the config file.
Exit status: 0 stopped cleanly, 1 failure (e.g. a port in use), 77 no permission, 78 bad config.`,
    )
    .action(async (options: { config: string; routes: boolean }) => {
      const { config, warnings } = await loadConfig(options.config);
      const log = createLogger(config.log.level);
      for (const warning of warnings) log.warn(warning);
      process.title = SUPERVISOR_TITLE;
      try {
        await runDaemon(config, log, { routes: options.routes, fork: forkWorker });
      } catch (err) {
        log.fatal({ err: (err as Error).message }, 'cannot start');
        throw err;
      }
    });
}
