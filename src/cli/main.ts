import { Command, CommanderError } from 'commander';
import { exitCodeFor, EXIT } from '../errors.js';
import { checkCommand } from './check.js';
import { doctorCommand } from './doctor.js';
import type { CliContext } from './context.js';
import { reloadCommand } from './reload.js';
import { restartCommand } from './restart.js';
import { routeCommand } from './route.js';
import { schemaCommand } from './schema.js';
import { runCommand } from './run.js';
import { startCommand } from './start.js';
import { statusCommand } from './status.js';
import { stopCommand } from './stop.js';
import { translateCommand } from './translate.js';
import { withdrawCommand } from './withdraw.js';
import { version } from '../version.js';

/**
 * The CLI: parses argv, runs one verb, and returns the exit status. It never calls
 * process.exit, so tests can run it in-process.
 */
export async function main(
  argv: readonly string[],
  io: Pick<CliContext, 'stdout' | 'stderr'> = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  const ctx: CliContext = { ...io, exitCode: EXIT.OK };
  const program = new Command('faithd6')
    .description(
      'FAITH-style IPv6-to-IPv4 TCP translator (RFC 3142): IPv6 clients reach IPv4-only servers ' +
        'through the addresses of a translation prefix such as 2001:db8:5999::/96.',
    )
    .version(version(), '-V, --version')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => ctx.stdout.write(text),
      writeErr: (text) => ctx.stderr.write(text),
    })
    .showHelpAfterError('(add --help for usage)')
    .addHelpText(
      'after',
      `
Every command but schema takes -c/--config FILE (default /etc/faithd6.yaml).
Exit status: 0 ok, 1 failure, 3 not running, 64 usage, 77 no permission, 78 bad config.`,
    );
  for (const make of [
    startCommand,
    stopCommand,
    restartCommand,
    reloadCommand,
    statusCommand,
    runCommand,
    checkCommand,
    translateCommand,
    routeCommand,
    withdrawCommand,
    doctorCommand,
    schemaCommand,
  ]) {
    program.addCommand(make(ctx).copyInheritedSettings(program));
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
    return ctx.exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end up here too, with exit code 0.
      return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    }
    ctx.stderr.write(`faithd6: ${(err as Error).message}\n`);
    return exitCodeFor(err);
  }
}
