/** Check: IPv6 forwarding does not silently stop router advertisements (accept_ra). */
import { readdir } from 'node:fs/promises';
import { readSysctl } from '../system/proc.js';
import { run, type Check } from './check.js';

/**
 * The classic trap of a host with IPv6 forwarding on: an interface that forwards takes router
 * advertisements only when its accept_ra is 2, so with the default accept_ra=1 its SLAAC
 * addresses and the default route learned from RAs are no longer refreshed and silently
 * expire. One check per interface in the trap, or one ✓.
 */
export async function forwardingChecks(): Promise<Check[]> {
  const title = 'forwarding and router advertisements';
  const dir = '/proc/sys/net/ipv6/conf';
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n !== 'all' && n !== 'default' && n !== 'lo').sort();
  } catch {
    return []; // no IPv6 at all: the IPv6 check says so
  }
  // Default routes learned from router advertisements, by interface.
  const fromRA = new Set<string>();
  try {
    for (const m of (await run('ip', ['-6', 'route', 'show', 'default', 'proto', 'ra'])).matchAll(/\bdev (\S+)/g)) fromRA.add(m[1]!);
  } catch {
    // Without ip the accept_ra=1 test below still finds the common case.
  }
  const forwarding: string[] = [];
  const checks: Check[] = [];
  for (const name of names) {
    const [fwd, acceptRA] = await Promise.all([readSysctl(`${dir}/${name}/forwarding`), readSysctl(`${dir}/${name}/accept_ra`)]);
    if (fwd !== '1') continue;
    forwarding.push(`${name} accept_ra=${acceptRA ?? '?'}`);
    const raRoute = fromRA.has(name);
    if (acceptRA === '1' || (acceptRA !== '2' && raRoute)) {
      checks.push({
        ok: false,
        title: `${title} on ${name}`,
        detail:
          `forwarding is on and accept_ra is ${acceptRA ?? 'unknown'}${raRoute ? ', and its default route was learned from router advertisements' : ''}: ` +
          'an interface that forwards ignores router advertisements unless accept_ra=2, so addresses from SLAAC and the default route silently expire',
        fix:
          `sysctl -w net.ipv6.conf.${name}.accept_ra=2 if ${name} takes its address or default route from router advertisements, ` +
          `or accept_ra=0 if it is configured statically; persist it in /etc/sysctl.d/. If this host is no router, turn forwarding off instead ` +
          '(sysctl -w net.ipv6.conf.all.forwarding=0): faithd6 relays connections, it does not need forwarding',
      });
    }
  }
  if (checks.length > 0) return checks;
  return [
    {
      ok: true,
      title,
      detail:
        forwarding.length > 0
          ? `forwarding is on (${forwarding.join(', ')}), and no interface relies on router advertisements it would ignore`
          : (await readSysctl(`${dir}/all/forwarding`)) === '1'
            ? 'net.ipv6.conf.all.forwarding is 1, but no interface besides lo forwards'
            : 'IPv6 forwarding is off: router advertisements are handled as usual',
    },
  ];
}
