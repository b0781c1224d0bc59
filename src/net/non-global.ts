import { parseNetwork4, type Network4 } from './address.js';

/** One range of the table below. */
export interface SpecialRange4 {
  readonly network: Network4;
  /** Its name in the registry, for messages. */
  readonly name: string;
  /**
   * Whether faithd6 refuses it as a destination unless a permit rule names it (a rule whose
   * `to` lies inside it), never through a broader rule such as 0.0.0.0/0: addresses that mean
   * this host, this link or no host at all rather than a server.
   */
  readonly explicitOnly: boolean;
}

/**
 * Every special-purpose IPv4 range faithd6 knows, in one table: RFC 6890 entries with
 * "Global: False" (as updated by later RFCs), plus multicast, which RFC 5735 §3 (the list RFC
 * 6052 §3.1 cites) also names.
 */
export const SPECIAL_IPV4: readonly SpecialRange4[] = (
  [
    ['0.0.0.0/8', '"this network"', true],
    ['10.0.0.0/8', 'private use', false],
    ['100.64.0.0/10', 'shared address space', false],
    ['127.0.0.0/8', 'loopback', true],
    ['169.254.0.0/16', 'link local', true],
    ['172.16.0.0/12', 'private use', false],
    ['192.0.0.0/24', 'IETF protocol assignments', false],
    ['192.0.2.0/24', 'documentation (TEST-NET-1)', false],
    ['192.168.0.0/16', 'private use', false],
    ['198.18.0.0/15', 'benchmarking', false],
    ['198.51.100.0/24', 'documentation (TEST-NET-2)', false],
    ['203.0.113.0/24', 'documentation (TEST-NET-3)', false],
    ['224.0.0.0/4', 'multicast', true],
    ['240.0.0.0/4', 'reserved', true],
    ['255.255.255.255/32', 'limited broadcast', true],
  ] as const
).map(([text, name, explicitOnly]) => ({ network: parseNetwork4(text), name, explicitOnly }));

/** The ranges that are not globally reachable: RFC 6052 §3.1 forbids embedding these in the well-known prefix 64:ff9b::/96. */
export const NON_GLOBAL_IPV4: readonly SpecialRange4[] = SPECIAL_IPV4;

/** Destinations no broad rule may reach, besides the host's own addresses. */
export const EXPLICIT_ONLY_IPV4: readonly Network4[] = SPECIAL_IPV4.filter((range) => range.explicitOnly).map((range) => range.network);
