import { Command } from 'commander';
import { EXIT } from '../errors.js';
import { runDoctor, type Check } from '../doctor/doctor.js';
import { verb, type CliContext } from './context.js';

/** Continuation lines of a multi-line text, indented under their ✓/✗ line. */
function indent(text: string, by: string): string {
  return text.replaceAll('\n', `\n${by}`);
}

function format(check: Check): string {
  let text = `${check.ok ? '✓' : '✗'} ${check.title}: ${indent(check.detail, '    ')}\n`;
  for (const note of check.notes ?? []) text += `  note: ${indent(note, '    ')}\n`;
  if (!check.ok && check.fix !== undefined) text += `  fix: ${indent(check.fix, '    ')}\n`;
  return text;
}

/** `faithd6 doctor`: check the host for what faithd6 needs, one ✓/✗ line each. */
export function doctorCommand(ctx: CliContext): Command {
  return verb('doctor', 'check this host for what faithd6 needs and explain what to do about each problem')
    .option(
      '-n, --name <host>',
      "check that HOST's AAAA records are translated addresses of permitted servers (repeatable)",
      (value: string, previous: string[]) => [...previous, value],
      [] as string[],
    )
    .addHelpText(
      'after',
      `
Checks, one line each, ✓ or ✗ with what to do:
  config        the file is valid (its warnings are shown as notes)
  IPv6          enabled (net.ipv6.conf.{all,lo}.disable_ipv6 = 0)
  local route   "local PREFIX dev lo" present for each prefix (faithd6 route up adds it)
  port N        each service port: [::]:N free or held by faithd6 (IPv6-only); a dual-stack
                listener (*:N) or another IPv6 listener is in the way; IPv4 listeners on
                the same port (the IPv4 service itself) are fine
  forwarding    an interface that forwards IPv6 ignores router advertisements unless
                accept_ra=2: its SLAAC addresses and default route silently expire
  name HOST     with --name: HOST's AAAA records lie in a prefix, the IPv4 address each
                stands for is permitted by the rules to some client on some service port,
                and HOST's A record, if any, is that same IPv4 address. Names are resolved
                like any program here would (/etc/hosts, then DNS).

Run it as root to see which program holds a port. It reads the network namespace it runs in.

Exit status: 0 every check passed, 1 some check failed, 78 the config file is invalid.`,
    )
    .action(async (options: { config: string; name: string[] }) => {
      const report = await runDoctor({ configFile: options.config, names: options.name });
      for (const check of report.checks) ctx.stdout.write(format(check));
      const failed = report.checks.filter((c) => !c.ok).length;
      ctx.stdout.write(failed === 0 ? `all ${report.checks.length} checks passed\n` : `${failed} of ${report.checks.length} checks failed\n`);
      ctx.exitCode = !report.configValid ? EXIT.CONFIG : failed > 0 ? EXIT.FAILURE : EXIT.OK;
    });
}
