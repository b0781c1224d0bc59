/** Check: DNS names whose AAAA records should be translated addresses of permitted servers. */
import { lookup } from 'node:dns/promises';
import { formatIPv4, formatIPv6, parseIPv4, parseIPv6, TranslationPrefix, translate } from '../net/address.js';
import type { Config } from '../config/types.js';
import { type Check } from './check.js';
import { Reachability } from './reachability.js';

function errorCode(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
}

async function addresses(name: string, family: 4 | 6): Promise<{ list: string[]; error?: string }> {
  try {
    const found = await lookup(name, { all: true, family });
    return { list: [...new Set(found.map((a) => a.address))] };
  } catch (err) {
    return { list: [], error: errorCode(err) };
  }
}

export async function nameChecks(config: Config, reach: Reachability, name: string): Promise<Check[]> {
  const title = `name ${name}`;
  const prefixes = config.prefixes.map((p) => TranslationPrefix.parse(p));
  const file = config.file;
  const [aaaa, a] = await Promise.all([addresses(name, 6), addresses(name, 4)]);
  const translateHint = (ipv4: string): string => {
    const v4 = parseIPv4(ipv4);
    return v4 === undefined ? '' : `${formatIPv6(prefixes[0]!.toIPv6(v4))} (faithd6 translate ${ipv4} -c ${file})`;
  };
  if (aaaa.list.length === 0) {
    return [
      {
        ok: false,
        title,
        detail: `no AAAA record (${aaaa.error ?? 'none'})`,
        fix:
          a.list.length > 0
            ? `publish an AAAA record with the translated address of its IPv4 address: ${translateHint(a.list[0]!)}`
            : `publish an AAAA record with the translated address of the server: faithd6 translate IPV4 -c ${file}`,
      },
    ];
  }
  const checks: Check[] = [];
  const embedded = new Set<string>();
  for (const address of aaaa.list) {
    const value = parseIPv6(address);
    const found = value === undefined ? undefined : translate(prefixes, value);
    if (found === undefined) {
      const inPrefix = value === undefined ? undefined : prefixes.find((p) => p.contains(value));
      checks.push({
        ok: false,
        title,
        detail:
          inPrefix === undefined
            ? `AAAA ${address} is in no translation prefix (${config.prefixes.join(', ')}): faithd6 never sees connections to it`
            : `AAAA ${address} is in ${inPrefix.text} but is no translated address (RFC 6052: bits 64 to 71 and the suffix must be zero)`,
        fix:
          a.list.length > 0
            ? `publish the translated address instead: ${translateHint(a.list[0]!)}`
            : `publish the translated address of the server instead: faithd6 translate IPV4 -c ${file}`,
      });
      continue;
    }
    const ipv4 = formatIPv4(found.ipv4);
    embedded.add(ipv4);
    checks.push({ ok: true, title, detail: `AAAA ${address} is in ${found.prefix.text} and stands for ${ipv4}` });
  }
  for (const ipv4 of embedded) {
    const { permitted, denied } = reach.check(parseIPv4(ipv4)!);
    if (permitted.length > 0) {
      const how = permitted.map((p) => `port ${p.port} by rule ${p.rule} (from ${reach.fromOf(p.rule)}, e.g. ${formatIPv6(p.source)})`);
      checks.push({ ok: true, title, detail: `${ipv4} is permitted: ${how.join('; ')}` });
      continue;
    }
    const reasons = [...denied];
    const special = denied.has('special-purpose destination');
    checks.push({
      ok: false,
      title,
      detail: `${ipv4} is denied to every client on every service port (${config.services.map((s) => s.port).join(', ')}): ${reasons.join(', ') || 'no service ports'}`,
      fix: special
        ? `${ipv4} is a special-purpose address or this host's own: only a permit rule naming it (to: [${ipv4}/32]) reaches it, placed before any rule that denies it`
        : `add a permit rule for it before any rule that denies it, e.g. - { action: permit, from: [YOUR CLIENTS' PREFIX], to: [${ipv4}/32] }`,
    });
  }
  if (a.list.length === 0) {
    checks.push({ ok: true, title, detail: 'no A record: nothing to compare with the AAAA records' });
  } else if (embedded.size > 0) {
    const same = a.list.length === embedded.size && a.list.every((x) => embedded.has(x));
    checks.push(
      same
        ? { ok: true, title, detail: `A ${a.list.join(', ')} is the IPv4 address the AAAA records stand for` }
        : {
            ok: false,
            title,
            detail: `A ${a.list.join(', ')} but the AAAA records stand for ${[...embedded].join(', ')}: IPv4 and IPv6 clients reach different servers`,
            fix: `make both name the same server: the AAAA record for ${a.list[0]!} is ${translateHint(a.list[0]!)}`,
          },
    );
  }
  return checks;
}
