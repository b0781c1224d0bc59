import { parseNetwork4, type Network4 } from './address.js';

/**
 * IPv4 ranges that are not globally reachable: RFC 6890 entries with "Global: False" (as
 * updated by later RFCs), plus multicast, which RFC 5735 §3 (the list RFC 6052 §3.1 cites)
 * also names. RFC 6052 §3.1 forbids embedding these in the well-known prefix 64:ff9b::/96.
 */
export const NON_GLOBAL_IPV4: readonly (readonly [Network4, string])[] = (
  [
    ['0.0.0.0/8', '"this network"'],
    ['10.0.0.0/8', 'private use'],
    ['100.64.0.0/10', 'shared address space'],
    ['127.0.0.0/8', 'loopback'],
    ['169.254.0.0/16', 'link local'],
    ['172.16.0.0/12', 'private use'],
    ['192.0.0.0/24', 'IETF protocol assignments'],
    ['192.0.2.0/24', 'documentation (TEST-NET-1)'],
    ['192.168.0.0/16', 'private use'],
    ['198.18.0.0/15', 'benchmarking'],
    ['198.51.100.0/24', 'documentation (TEST-NET-2)'],
    ['203.0.113.0/24', 'documentation (TEST-NET-3)'],
    ['224.0.0.0/4', 'multicast'],
    ['240.0.0.0/4', 'reserved'],
    ['255.255.255.255/32', 'limited broadcast'],
  ] as const
).map(([text, name]) => [parseNetwork4(text), name] as const);
