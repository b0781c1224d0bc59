import { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { installLocalRoutes, removeLocalRoutes, ROUTE_PROTOCOL, type RouteOutcome } from '../system/route.js';
import { verb, type CliContext } from './context.js';

/** One line per prefix, in the words `route up` and `route down` print. */
function describe(outcome: RouteOutcome): string {
  const route = `local ${outcome.prefix} dev lo`;
  switch (outcome.outcome) {
    case 'added':
      return `added ${route}`;
    case 'already ours':
      return `${route}: already present (added by faithd6)`;
    case 'foreign':
      return `local ${outcome.prefix}: present, not added by faithd6: left as it is`;
    case 'removed':
      return `removed ${route}`;
    case 'absent':
      return `local ${outcome.prefix}: not present`;
  }
}

const EXIT_STATUS = 'Exit status: 0 done (also when there was nothing to do), 77 no permission (needs CAP_NET_ADMIN), 78 bad config, 1 other failure.';

function subcommand(
  ctx: CliContext,
  name: 'up' | 'down',
  description: string,
  act: (prefixes: readonly string[]) => Promise<RouteOutcome[]>,
  help: string,
): Command {
  return verb(name, description, 'config file whose prefixes to use')
    .addHelpText('after', `\n${help}\n\n${EXIT_STATUS}`)
    .action(async (options: { config: string }) => {
      const { config } = await loadConfig(options.config);
      if (config.route === 'external') {
        // The unit runs `route up`/`route down` whatever the file says; `external` means the
        // operator owns these routes, so faithd6 must not touch them.
        ctx.stdout.write(`${config.file} says route: external: the local routes are yours to manage; nothing done\n`);
        return;
      }
      for (const outcome of await act(config.prefixes)) ctx.stdout.write(`${describe(outcome)}\n`);
    });
}

/** `faithd6 route up|down`: install or remove the local routes of the configured prefixes. */
export function routeCommand(ctx: CliContext): Command {
  const route = new Command('route').description('install (up) or remove (down) the local routes of the configured prefixes; idempotent').addHelpText(
    'after',
    `
Each prefix needs "local PREFIX dev lo" in the local routing table: it makes every address of
the prefix local, so that faithd6's listener on [::]:port accepts connections to them. faithd6
marks the routes it adds with routing protocol ${ROUTE_PROTOCOL} (ip -6 route show table local proto ${ROUTE_PROTOCOL})
and removes only those: a route the operator added is never deleted. With "route: external" in
the config file both verbs do nothing.

Run them privileged from the systemd unit while the daemon itself runs unprivileged:
  ExecStartPre=+faithd6 route up -c /etc/faithd6.yaml
  ExecStopPost=+faithd6 route down -c /etc/faithd6.yaml

${EXIT_STATUS}`,
  );
  const up = subcommand(
    ctx,
    'up',
    'add the local route of each configured prefix that is missing',
    installLocalRoutes,
    `Prints one line per prefix: "added local PREFIX dev lo", "already present (added by faithd6)"
or "present, not added by faithd6: left as it is". When one prefix fails, the routes added in
the same run are removed again.`,
  );
  const down = subcommand(
    ctx,
    'down',
    'remove the local routes faithd6 added for the configured prefixes',
    removeLocalRoutes,
    `Prints one line per prefix: "removed local PREFIX dev lo", "not present", or "present, not
added by faithd6: left as it is".`,
  );
  for (const sub of [up, down]) route.addCommand(sub);
  // main() gives `route` its exitOverride() and output only after this returns, and
  // addCommand() never passes them down: copy them just before `up` or `down` parses argv.
  route.hook('preSubcommand', (parent, sub) => {
    sub.copyInheritedSettings(parent);
  });
  return route;
}
