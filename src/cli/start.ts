import { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/types.js';
import { verb, type CliContext } from './context.js';
import { startInBackground } from './daemon-control.js';

export const DEFAULT_LOG = '/var/log/faithd6.log';

/** `faithd6 start`: the daemon in the background; returns once it accepts, or says why not. */
export function startCommand(ctx: CliContext): Command {
  return verb('start', 'start the translator in the background; return once every listener accepts')
    .option('-l, --log <file>', "where the daemon's log lines go", DEFAULT_LOG)
    .addHelpText(
      'after',
      `
It checks the config first, refuses if faithd6 is already running, and writes its pidfile and
control socket in the config's runtimeDirectory (default /run/faithd6). On failure nothing is
left behind: no route, no worker, no pidfile.
Exit status: 0 started, 1 failure (e.g. a port in use, already running), 77 no permission,
78 bad config.`,
    )
    .action(async (options: { config: string; log: string }) => {
      await startAndReport(await loadForStart(options.config, ctx), options.log, ctx);
    });
}

/** Loads the config `start` and `restart` act on; its warnings go to stderr. */
export async function loadForStart(file: string, ctx: CliContext): Promise<Config> {
  const { config, warnings } = await loadConfig(file);
  for (const warning of warnings) ctx.stderr.write(`warning: ${warning}\n`);
  return config;
}

/** Starts the daemon in the background and says so. */
export async function startAndReport(config: Config, logFile: string, ctx: CliContext): Promise<void> {
  const { pid, ports } = await startInBackground(config, logFile);
  ctx.stdout.write(`faithd6 started: pid ${pid}, ports ${ports.join(', ')}; log ${logFile}\n`);
}
