/** Which clients may reach an IPv4 address through the rules, answered exactly with the real AccessPolicy. */
import { AccessPolicy, hostIPv4Addresses, type DenyReason } from '../policy/access.js';
import { IPV4_COMPATIBLE, IPV4_MAPPED, network6Within, parseNetwork6, TranslationPrefix, type Network6 } from '../net/address.js';
import type { Config, RuleConfig } from '../config/types.js';

type Net6 = Pick<Network6, 'base' | 'length'>;

/** Whether `inner` lies inside `outer` (or is it). */
const within = (outer: Net6, inner: Net6): boolean => network6Within(inner, outer);

/** An address of `net` that lies in none of `holes` (networks inside it), or undefined when they cover it. */
function uncovered(net: Net6, holes: readonly Net6[]): bigint | undefined {
  if (holes.length === 0) return net.base;
  if (holes.some((h) => h.length === net.length)) return undefined;
  // Holes are strictly longer than net here, so net.length < 128 and it has two halves.
  const length = net.length + 1;
  const halves = [
    { base: net.base, length },
    { base: net.base | (1n << BigInt(128 - length)), length },
  ];
  const inside = halves.map((half) => holes.filter((h) => within(half, h)));
  // The half with fewer holes first: a shorter search and a rounder address.
  const order = inside[0]!.length <= inside[1]!.length ? [0, 1] : [1, 0];
  for (const i of order) {
    const found = uncovered(halves[i]!, inside[i]!);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * Answers "may some client reach this IPv4 address on some service port?" exactly, with the
 * real AccessPolicy. A verdict depends on the source only through which of the rules' `from`
 * networks (and the sources refused outright: IPv4-mapped, IPv4-compatible, inside a prefix)
 * contain it. Prefixes nest, so for each such network N, one address of N outside every listed
 * network inside N has the same memberships as every other such address; those addresses,
 * together, stand for every possible client.
 */
export class Reachability {
  private readonly policy: AccessPolicy;
  /** Source addresses that, together, stand for every client. */
  private readonly sources: readonly bigint[];
  private readonly ports: readonly number[];
  private readonly rules: readonly RuleConfig[];

  constructor(config: Config) {
    const prefixes = config.prefixes.map((p) => TranslationPrefix.parse(p));
    this.policy = new AccessPolicy(config.rules, prefixes, hostIPv4Addresses());
    this.ports = config.services.map((s) => s.port);
    this.rules = config.rules;
    const networks = new Map<string, Net6>();
    const add = (text: string): void => {
      const { base, length } = parseNetwork6(text);
      networks.set(`${base}/${length}`, { base, length });
    };
    for (const text of ['::/0', '::/128', '::1/128', IPV4_COMPATIBLE, IPV4_MAPPED, ...config.prefixes]) add(text);
    for (const rule of config.rules) for (const text of rule.from) add(text);
    const all = [...networks.values()];
    this.sources = all.flatMap((net) => {
      const source = uncovered(
        net,
        all.filter((other) => other.length > net.length && within(net, other)),
      );
      return source === undefined ? [] : [source];
    });
  }

  /** Per service port where some client may reach `ipv4`: the deciding rule and one such client; else why not. */
  check(ipv4: number): { permitted: { port: number; rule: number; source: bigint }[]; denied: Set<string> } {
    const permitted: { port: number; rule: number; source: bigint }[] = [];
    const denied = new Set<string>();
    const sourceReasons: readonly DenyReason[] = ['IPv4-mapped source', 'IPv4-compatible source', 'source inside a translation prefix'];
    for (const port of this.ports) {
      for (const source of this.sources) {
        const verdict = this.policy.check(source, ipv4, port);
        if (verdict.permit) {
          permitted.push({ port, rule: verdict.rule ?? 0, source });
          break;
        }
        if (sourceReasons.includes(verdict.reason as DenyReason)) continue;
        denied.add(verdict.reason === 'denied by rule' ? `denied by rule ${verdict.rule ?? '?'}` : verdict.reason);
      }
    }
    return { permitted, denied };
  }

  fromOf(rule: number): string {
    return this.rules[rule - 1]?.from.join(', ') ?? '?';
  }
}
