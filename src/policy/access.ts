import os from 'node:os';
import {
  formatIPv4,
  IPV4_COMPATIBLE,
  IPV4_MAPPED,
  mask4,
  network4Within,
  parseIPv4,
  parseNetwork4,
  parseNetwork6,
  type Network4,
  type Network6,
  type TranslationPrefix,
} from '../net/address.js';
import type { RuleConfig } from '../config/types.js';
import { EXPLICIT_ONLY_IPV4 } from '../net/non-global.js';

/** Why a connection was refused, in the operator's words (these go into the log). */
export type DenyReason =
  | 'no matching rule'
  | 'denied by rule'
  | 'special-purpose destination'
  | 'IPv4-mapped source'
  | 'IPv4-compatible source'
  | 'source inside a translation prefix';

/** The outcome of one access check; shared and frozen, never built per connection. */
export interface Verdict {
  readonly permit: boolean;
  /** 1-based index of the rule that decided, or undefined when no rule did. */
  readonly rule: number | undefined;
  readonly reason: DenyReason | 'permitted by rule';
}

/** This host's IPv4 addresses and the directed broadcast of each attached subnet, as uint32. */
export interface HostAddresses {
  readonly own: readonly number[];
  readonly broadcasts: readonly number[];
}

/** The part of `os.networkInterfaces()` that hostIPv4Addresses reads. */
export type InterfaceTable = Readonly<Record<string, readonly Pick<os.NetworkInterfaceInfo, 'address' | 'netmask' | 'family'>[] | undefined>>;

/**
 * The IPv4 addresses of this host (network namespace) and the directed broadcast address of each
 * attached subnet; /31 and /32 subnets have no broadcast address (RFC 3021).
 */
export function hostIPv4Addresses(interfaces: InterfaceTable = os.networkInterfaces()): HostAddresses {
  const own = new Set<number>();
  const broadcasts = new Set<number>();
  for (const addresses of Object.values(interfaces)) {
    for (const info of addresses ?? []) {
      if (info.family !== 'IPv4') continue;
      const address = parseIPv4(info.address);
      const netmask = parseIPv4(info.netmask);
      if (address === undefined || netmask === undefined) continue;
      own.add(address);
      const hostBits = ~netmask >>> 0;
      if (hostBits > 1) broadcasts.add((address | hostBits) >>> 0);
    }
  }
  const ascending = (a: number, b: number): number => a - b;
  return { own: [...own].sort(ascending), broadcasts: [...broadcasts].sort(ascending) };
}

/** An IPv6 network as per-32-bit-word masks and bases, so that matching needs no BigInt. */
interface Words6 {
  /** Words the prefix length touches (ceil(length / 32)); the rest match anything. */
  readonly count: number;
  readonly masks: Uint32Array;
  readonly bases: Uint32Array;
}

function compile6(network: Network6): Words6 {
  const masks = new Uint32Array(4);
  const bases = new Uint32Array(4);
  for (let word = 0; word < 4; word++) {
    const bits = Math.max(0, Math.min(32, network.length - 32 * word));
    masks[word] = mask4(bits);
    bases[word] = Number(BigInt.asUintN(32, network.base >> BigInt(96 - 32 * word)));
  }
  return { count: Math.ceil(network.length / 32), masks, bases };
}

function matches6(network: Words6, words: Uint32Array): boolean {
  for (let word = 0; word < network.count; word++) {
    // word < count <= 4, so every index exists.
    if ((words[word]! & network.masks[word]!) >>> 0 !== network.bases[word]) return false;
  }
  return true;
}

/** An IPv4 network as mask and base. */
interface Words4 {
  readonly mask: number;
  readonly base: number;
  /** Whether the network lies inside a special-purpose range, so it may name those addresses. */
  readonly explicit: boolean;
}

function compile4(network: Network4, explicit: boolean): Words4 {
  return { mask: mask4(network.length), base: network.base, explicit };
}

interface CompiledRule {
  readonly permit: boolean;
  readonly from: readonly Words6[];
  readonly to: readonly Words4[];
  /** Undefined when the rule applies to every port. */
  readonly ports: ReadonlySet<number> | undefined;
  readonly verdict: Verdict;
}

function verdict(permit: boolean, rule: number | undefined, reason: Verdict['reason']): Verdict {
  return Object.freeze({ permit, rule, reason });
}

const NO_MATCH = verdict(false, undefined, 'no matching rule');
const SPECIAL_DESTINATION = verdict(false, undefined, 'special-purpose destination');
const MAPPED_SOURCE = verdict(false, undefined, 'IPv4-mapped source');
const COMPATIBLE_SOURCE = verdict(false, undefined, 'IPv4-compatible source');
const LOOPED_SOURCE = verdict(false, undefined, 'source inside a translation prefix');

const MAPPED = compile6(parseNetwork6(IPV4_MAPPED));
const COMPATIBLE = compile6(parseNetwork6(IPV4_COMPATIBLE));

/**
 * The access rules compiled for the per-connection hot path: check() splits the source into four
 * 32-bit words once (the only BigInt work), compares integers, and returns shared frozen verdicts.
 */
export class AccessPolicy {
  readonly #rules: readonly CompiledRule[];
  readonly #prefixes: readonly Words6[];
  readonly #special: readonly Words4[];
  readonly #hostSpecial: ReadonlySet<number>;
  /** Scratch for the source address's four 32-bit words; check() is synchronous. */
  readonly #words = new Uint32Array(4);

  constructor(rules: readonly RuleConfig[], prefixes: readonly TranslationPrefix[], host: HostAddresses) {
    const hostAddresses = [...host.own, ...host.broadcasts].map((address) => address >>> 0);
    // The host's own and broadcast addresses are special as /32s: only that exact /32 names one.
    const specialRanges = [...EXPLICIT_ONLY_IPV4, ...hostAddresses.map((address) => parseNetwork4(formatIPv4(address)))];
    this.#special = EXPLICIT_ONLY_IPV4.map((range) => compile4(range, true));
    this.#hostSpecial = new Set(hostAddresses);
    this.#prefixes = prefixes.map((prefix) => compile6(prefix.network));
    this.#rules = rules.map((rule, index): CompiledRule => {
      const permit = rule.action === 'permit';
      return {
        permit,
        from: rule.from.map((text) => compile6(parseNetwork6(text))),
        to: rule.to.map((text) => {
          const network = parseNetwork4(text);
          return compile4(
            network,
            specialRanges.some((range) => network4Within(network, range)),
          );
        }),
        ports: rule.ports.length === 0 ? undefined : new Set(rule.ports),
        verdict: verdict(permit, index + 1, permit ? 'permitted by rule' : 'denied by rule'),
      };
    });
  }

  /** The verdict for a connection from `source` to IPv4 `destination` (uint32) on service `port`. */
  check(source: bigint, destination: number, port: number): Verdict {
    destination >>>= 0; // a result of `|` or `<<` may arrive as a negative int32
    const words = this.#words;
    words[0] = Number(BigInt.asUintN(32, source >> 96n));
    words[1] = Number(BigInt.asUintN(32, source >> 64n));
    words[2] = Number(BigInt.asUintN(32, source >> 32n));
    words[3] = Number(BigInt.asUintN(32, source));
    if (matches6(MAPPED, words)) return MAPPED_SOURCE;
    // ::1 (a client on the translator host itself) and :: lie in ::/96 but embed no IPv4
    // address; they go through the rules like any other source.
    if (matches6(COMPATIBLE, words) && words[3] > 1) return COMPATIBLE_SOURCE;
    // A client inside a prefix is the translator talking to itself: a relay loop.
    if (matchesAny6(this.#prefixes, words)) return LOOPED_SOURCE;

    const special = this.#hostSpecial.has(destination) || matchesAny4(this.#special, destination, false);
    for (const rule of this.#rules) {
      if (rule.ports !== undefined && !rule.ports.has(port)) continue;
      if (!matchesAny6(rule.from, words)) continue;
      // A permit rule reaches a special-purpose destination only through a network inside that
      // range; a broader one (0.0.0.0/0) is skipped, not a match. A deny rule applies as usual.
      if (!matchesAny4(rule.to, destination, rule.permit && special)) continue;
      return rule.verdict;
    }
    return special ? SPECIAL_DESTINATION : NO_MATCH;
  }
}

function matchesAny6(networks: readonly Words6[], words: Uint32Array): boolean {
  for (const network of networks) if (matches6(network, words)) return true;
  return false;
}

function matchesAny4(networks: readonly Words4[], address: number, explicitOnly: boolean): boolean {
  for (const network of networks) {
    if ((!explicitOnly || network.explicit) && (address & network.mask) >>> 0 === network.base) {
      return true;
    }
  }
  return false;
}
