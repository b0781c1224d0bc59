import { Command } from 'commander';
import { formatIPv4, formatIPv6, parseIPv4, parseIPv6, translate, TranslationPrefix } from '../net/address.js';
import { loadConfig } from '../config/load.js';
import { FaithdError } from '../errors.js';
import { verb, type CliContext } from './context.js';

async function prefixesFor(options: { config: string; prefix?: string[] }): Promise<TranslationPrefix[]> {
  if (options.prefix && options.prefix.length > 0) {
    return options.prefix.map((text) => {
      try {
        return TranslationPrefix.parse(text);
      } catch (err) {
        throw new FaithdError('USAGE', `--prefix ${(err as Error).message}`);
      }
    });
  }
  const { config } = await loadConfig(options.config);
  return config.prefixes.map((text) => TranslationPrefix.parse(text));
}

/** `faithd6 translate ADDR`: IPv4 → translated IPv6 (for AAAA records), and back. */
export function translateCommand(ctx: CliContext): Command {
  return verb(
    'translate',
    'print the translated IPv6 address of an IPv4 address (for AAAA records), or the IPv4 address a translated IPv6 address stands for',
    'config file whose prefixes to use',
  )
    .argument('<address>', 'an IPv4 address such as 192.0.2.10, or an IPv6 address inside a prefix')
    .option(
      '-p, --prefix <prefix>',
      "use this prefix instead of the config file's (repeatable)",
      (value: string, previous: string[]) => [...previous, value],
      [] as string[],
    )
    .addHelpText(
      'after',
      `
Examples:
  $ faithd6 translate 192.0.2.10
  2001:db8:5999::c000:20a
  $ faithd6 translate 2001:db8:5999::c000:20a
  192.0.2.10
  $ faithd6 translate --prefix 64:ff9b:1::/96 198.18.0.2

Exit status: 0 translated, 1 the IPv6 address is in no prefix, 64 not an address, 78 bad config.`,
    )
    .action(async (address: string, options: { config: string; prefix?: string[] }) => {
      const ipv4 = parseIPv4(address);
      const ipv6 = ipv4 === undefined ? parseIPv6(address) : undefined;
      if (ipv4 === undefined && ipv6 === undefined) {
        throw new FaithdError('USAGE', `"${address}" is neither an IPv4 nor an IPv6 address`);
      }
      const prefixes = await prefixesFor(options);
      if (ipv4 !== undefined) {
        for (const prefix of prefixes) ctx.stdout.write(`${formatIPv6(prefix.toIPv6(ipv4))}\n`);
        return;
      }
      const found = translate(prefixes, ipv6 as bigint);
      if (found === undefined) {
        throw new FaithdError('NOT_TRANSLATED', `${address} is not a translated address of ${prefixes.map((p) => p.text).join(', ')}`);
      }
      ctx.stdout.write(`${formatIPv4(found.ipv4)}\n`);
    });
}
