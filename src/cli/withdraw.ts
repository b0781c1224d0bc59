import type { Command } from 'commander';
import { setProtocol } from '../announce/bird.js';
import { loadConfig } from '../config/load.js';
import { REASSERT_INTERVAL } from '../announce/announcer.js';
import { verb, type CliContext } from './context.js';
import { daemonStatus } from './daemon-control.js';

/**
 * `faithd6 withdraw`: disables the BIRD protocol that announces this host's prefixes. The
 * systemd unit runs it after every stop, a crash included (ExecStopPost=), so that a host whose
 * daemon died does not keep attracting connections; idempotent.
 */
export function withdrawCommand(ctx: CliContext): Command {
  return verb('withdraw', "withdraw this host's prefixes: disable the BIRD protocol of announce in the config; idempotent", 'config file whose announce to use')
    .addHelpText(
      'after',
      `
Prints "withdrawn: BIRD protocol NAME disabled", "BIRD protocol NAME was already disabled", or,
for a config without announce.birdSocket, that there is nothing to withdraw. The systemd unit
runs it after every stop, a crash included:
  ExecStopPost=-+faithd6 withdraw -c /etc/faithd6.yaml
A running faithd6 tells BIRD its own state again within seconds: to take a host out of service,
stop faithd6 (it withdraws first); withdraw says so when the daemon is running.

Exit status: 0 done (also when there was nothing to do), 78 bad config, 1 BIRD not reached or refused.`,
    )
    .action(async (options: { config: string }) => {
      const { config } = await loadConfig(options.config);
      const { birdSocket, protocol } = config.announce;
      if (birdSocket === null) {
        ctx.stdout.write(`${config.file} has no announce.birdSocket: nothing to withdraw\n`);
        return;
      }
      const changed = await setProtocol(birdSocket, protocol, false);
      ctx.stdout.write(changed ? `withdrawn: BIRD protocol ${protocol} disabled\n` : `BIRD protocol ${protocol} was already disabled\n`);
      const running = await daemonStatus(config.runtimeDirectory).catch(() => null);
      if (running?.announce?.announced === true) {
        ctx.stderr.write(
          `faithd6: the running daemon (pid ${running.pid}) announces again within ${REASSERT_INTERVAL / 1000} s; ` +
            `to take this host out of service, stop it: faithd6 stop (or systemctl stop faithd6) withdraws first\n`,
        );
      }
    });
}
