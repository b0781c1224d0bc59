import { Command } from 'commander';
import { verb, type CliContext } from './context.js';
import { runtimeDirectoryOf, stopDaemon } from './daemon-control.js';

/** `faithd6 stop`: graceful stop, waiting until the daemon has exited. */
export function stopCommand(ctx: CliContext): Command {
  return verb('stop', 'stop the translator gracefully and wait until it has exited', "config file (says where the daemon's control socket is)")
    .option('--runtime-dir <dir>', "the daemon's runtime directory, instead of the config file's runtimeDirectory")
    .addHelpText(
      'after',
      `
With announce configured, it first withdraws the prefixes from BIRD and goes on accepting for
announce.withdrawGrace, while the router moves new flows to the other hosts. Then it stops
accepting, lets open connections finish for up to timeouts.drain, resets what is left, removes
the routes it added and exits.
Exit status: 0 stopped, 1 it did not stop in time, 3 it was not running, 77 no permission.`,
    )
    .action(async (options: { config: string; runtimeDir?: string }) => {
      const { pid, seconds } = await stopDaemon(await runtimeDirectoryOf(options), ctx);
      ctx.stdout.write(`faithd6 stopped (pid ${pid}) in ${seconds.toFixed(1)} s\n`);
    });
}
