import { Command } from 'commander';
import { FaithdError } from '../errors.js';
import { verb, type CliContext } from './context.js';
import { stopDaemon } from './daemon-control.js';
import { DEFAULT_LOG, loadForStart, startAndReport } from './start.js';

/** `faithd6 restart`: stop (if running), then start. */
export function restartCommand(ctx: CliContext): Command {
  return verb('restart', 'stop the translator if it runs, then start it again')
    .option('-l, --log <file>', "where the daemon's log lines go", DEFAULT_LOG)
    .addHelpText(
      'after',
      `
The config is checked before anything is stopped: a bad file leaves the running daemon alone.
Exit status: as for start.`,
    )
    .action(async (options: { config: string; log: string }) => {
      const config = await loadForStart(options.config, ctx);
      try {
        const { pid } = await stopDaemon(config.runtimeDirectory, ctx);
        ctx.stdout.write(`faithd6 stopped (pid ${pid})\n`);
      } catch (err) {
        if (!(err instanceof FaithdError) || err.code !== 'NOT_RUNNING') throw err;
      }
      await startAndReport(config, options.log, ctx);
    });
}
