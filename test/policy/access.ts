import os from 'node:os';
import t from 'tap';
import { AccessPolicy, hostIPv4Addresses, type HostAddresses, type Verdict } from '../../src/policy/access.js';
import { TranslationPrefix } from '../../src/net/address.js';
import type { RuleConfig } from '../../src/config/types.js';
import { v4, v6 } from '../fixtures/addresses.js';

const permit = (to: string[], from: string[] = ['::/0'], ports: number[] = []): RuleConfig => ({
  action: 'permit',
  from,
  to,
  ports,
});
const deny = (to: string[], from: string[] = ['::/0'], ports: number[] = []): RuleConfig => ({
  action: 'deny',
  from,
  to,
  ports,
});

const NO_HOST: HostAddresses = { own: [], broadcasts: [] };
const PREFIXES = [TranslationPrefix.parse('2001:db8:5999::/96'), TranslationPrefix.parse('64:ff9b::/96')];
const CLIENT = v6('2001:db8:1::10');

const permitted = (rule: number): Verdict => ({ permit: true, rule, reason: 'permitted by rule' });
const denied = (rule: number): Verdict => ({ permit: false, rule, reason: 'denied by rule' });
const NO_MATCH: Verdict = { permit: false, rule: undefined, reason: 'no matching rule' };
const SPECIAL: Verdict = { permit: false, rule: undefined, reason: 'special-purpose destination' };

t.test('first match wins, in order', async (t) => {
  const policy = new AccessPolicy(
    [deny(['192.168.1.66/32']), permit(['192.168.1.0/24']), deny(['192.168.0.0/16']), permit(['192.168.0.0/16'])],
    PREFIXES,
    NO_HOST,
  );
  t.same(policy.check(CLIENT, v4('192.168.1.66'), 80), denied(1));
  t.same(policy.check(CLIENT, v4('192.168.1.2'), 80), permitted(2));
  t.same(policy.check(CLIENT, v4('192.168.2.2'), 80), denied(3), 'rule 4 is never reached');
  t.same(policy.check(CLIENT, v4('10.0.0.1'), 80), NO_MATCH);
  t.same(new AccessPolicy([], PREFIXES, NO_HOST).check(CLIENT, v4('192.0.2.1'), 80), NO_MATCH, 'no rules');
});

t.test('verdicts are shared and frozen', async (t) => {
  const policy = new AccessPolicy([permit(['192.0.2.0/24']), deny(['0.0.0.0/0'])], PREFIXES, NO_HOST);
  const a = policy.check(CLIENT, v4('192.0.2.1'), 80);
  const b = policy.check(v6('2001:db8:2::1'), v4('192.0.2.200'), 443);
  t.equal(a, b, 'the same object for the same rule');
  t.ok(Object.isFrozen(a));
  t.equal(policy.check(CLIENT, v4('10.1.1.1'), 80), policy.check(CLIENT, v4('10.2.2.2'), 22));
  t.equal(policy.check(CLIENT, v4('10.1.1.1'), 80).rule, 2);
  const none = new AccessPolicy([], PREFIXES, NO_HOST);
  t.equal(
    none.check(CLIENT, v4('10.0.0.1'), 80),
    new AccessPolicy([], [], NO_HOST).check(v6('2001:db8:9::1'), v4('10.9.9.9'), 22),
    'one shared "no matching rule" verdict',
  );
  t.ok(Object.isFrozen(none.check(CLIENT, v4('192.0.2.1'), 80)));
});

t.test('source networks', async (t) => {
  const policy = new AccessPolicy(
    [
      permit(['192.0.2.0/24'], ['2001:db8:1::/48', '2001:db8:ff00::/40']),
      deny(['192.0.2.0/24'], ['2001:db8::/32']),
      permit(['192.0.2.0/24'], ['2001:db8:1:2:3:4:5:6/128']),
      permit(['198.51.100.0/24'], ['2001:db8:abcd:1234:5678::/80']),
    ],
    PREFIXES,
    NO_HOST,
  );
  t.same(policy.check(v6('2001:db8:1:ffff::1'), v4('192.0.2.1'), 80), permitted(1));
  t.same(policy.check(v6('2001:db8:ffab::1'), v4('192.0.2.1'), 80), permitted(1), 'second from network');
  t.same(policy.check(v6('2001:db8:2::1'), v4('192.0.2.1'), 80), denied(2));
  t.same(policy.check(v6('2001:db9::1'), v4('192.0.2.1'), 80), NO_MATCH);
  t.same(policy.check(v6('2001:db8:abcd:1234:5678:ffff:1:1'), v4('198.51.100.7'), 80), permitted(4));
  t.same(policy.check(v6('2001:db8:abcd:1234:5679::1'), v4('198.51.100.7'), 80), NO_MATCH, 'bit 79 differs');
  t.same(policy.check(v6('2001:db8:abcd:1235:5678::1'), v4('198.51.100.7'), 80), NO_MATCH, 'word 1 differs');
  const exact = new AccessPolicy([permit(['192.0.2.0/24'], ['2001:db8:1:2:3:4:5:6/128'])], PREFIXES, NO_HOST);
  t.same(exact.check(v6('2001:db8:1:2:3:4:5:6'), v4('192.0.2.9'), 80), permitted(1));
  t.same(exact.check(v6('2001:db8:1:2:3:4:5:7'), v4('192.0.2.9'), 80), NO_MATCH, 'last bit differs');
});

t.test('ports', async (t) => {
  const policy = new AccessPolicy(
    [permit(['192.0.2.0/24'], ['::/0'], [80, 443]), deny(['192.0.2.0/24'], ['::/0'], [22]), permit(['192.0.2.1/32'])],
    PREFIXES,
    NO_HOST,
  );
  t.same(policy.check(CLIENT, v4('192.0.2.7'), 80), permitted(1));
  t.same(policy.check(CLIENT, v4('192.0.2.7'), 443), permitted(1));
  t.same(policy.check(CLIENT, v4('192.0.2.7'), 22), denied(2));
  t.same(policy.check(CLIENT, v4('192.0.2.7'), 5999), NO_MATCH);
  t.same(policy.check(CLIENT, v4('192.0.2.1'), 5999), permitted(3), 'no ports = every port');
  t.same(policy.check(CLIENT, v4('192.0.2.1'), 22), denied(2));
});

t.test('sources that are never translated', async (t) => {
  const policy = new AccessPolicy([permit(['0.0.0.0/0'])], PREFIXES, NO_HOST);
  const cases: [string, Verdict['reason']][] = [
    ['::ffff:192.0.2.1', 'IPv4-mapped source'],
    ['::ffff:0:0', 'IPv4-mapped source'],
    ['::ffff:ffff:ffff', 'IPv4-mapped source'],
    ['::192.0.2.1', 'IPv4-compatible source'],
    ['::0.0.0.2', 'IPv4-compatible source'],
    ['2001:db8:5999::c0a8:102', 'source inside a translation prefix'],
    ['64:ff9b::1.2.3.4', 'source inside a translation prefix'],
  ];
  for (const [source, reason] of cases) {
    t.same(policy.check(v6(source), v4('192.0.2.1'), 80), { permit: false, rule: undefined, reason }, source);
  }
  // ::1 is what a client on the translator host itself comes from, and :: embeds nothing:
  // both go through the rules instead (here the first rule, from ::/0).
  t.same(policy.check(v6('::1'), v4('192.0.2.1'), 80), permitted(1), '::1 is not IPv4-compatible');
  t.same(policy.check(v6('::'), v4('192.0.2.1'), 80), permitted(1), ':: is not IPv4-compatible');
  const fromElsewhere = new AccessPolicy([permit(['0.0.0.0/0'], ['2001:db8::/32'])], PREFIXES, NO_HOST);
  t.same(fromElsewhere.check(v6('::1'), v4('192.0.2.1'), 80), NO_MATCH, '::1 needs a rule that names it');
  t.same(policy.check(v6('::1:ffff:c000:201'), v4('192.0.2.1'), 80), permitted(1), 'near ::ffff:0:0/96');
  t.same(policy.check(v6('::1:0:0:1'), v4('192.0.2.1'), 80), permitted(1), 'near ::/96');
  t.same(policy.check(v6('2001:db8:5999:0:0:1::1'), v4('192.0.2.1'), 80), permitted(1), 'near a prefix');

  const other = [TranslationPrefix.parse('2001:db8:122::/48')];
  const looped = new AccessPolicy([permit(['0.0.0.0/0'])], other, NO_HOST);
  t.equal(looped.check(v6('2001:db8:122:ffff::1'), 1, 80).reason, 'source inside a translation prefix');
  t.equal(looped.check(v6('2001:db8:123::1'), v4('192.0.2.1'), 80).permit, true);
  // A mapped source is refused even by a rule that names it.
  const naming = new AccessPolicy([permit(['0.0.0.0/0'], ['::/0', '::ffff:0:0/96'])], [], NO_HOST);
  t.equal(naming.check(v6('::ffff:192.0.2.1'), v4('192.0.2.1'), 80).reason, 'IPv4-mapped source');
});

const SPECIAL_RANGES: [range: string, inside: string[], explicitInside: string][] = [
  ['0.0.0.0/8', ['0.0.0.0', '0.1.2.3', '0.255.255.255'], '0.0.0.0/16'],
  ['127.0.0.0/8', ['127.0.0.1', '127.255.255.255', '127.1.2.3'], '127.0.0.0/24'],
  ['169.254.0.0/16', ['169.254.0.1', '169.254.169.254', '169.254.255.255'], '169.254.169.254/32'],
  ['224.0.0.0/4', ['224.0.0.1', '232.1.1.1', '239.255.255.250'], '239.0.0.0/8'],
  ['240.0.0.0/4', ['240.0.0.1', '250.1.1.1', '255.255.255.254'], '248.0.0.0/5'],
  ['255.255.255.255/32', ['255.255.255.255'], '255.255.255.255/32'],
];

t.test('special-purpose destinations', async (t) => {
  for (const [range, inside, narrower] of SPECIAL_RANGES) {
    const broad = new AccessPolicy([permit(['0.0.0.0/0']), permit(['96.0.0.0/3', '0.0.0.0/1', '128.0.0.0/1'])], PREFIXES, NO_HOST);
    const explicit = new AccessPolicy([permit(['0.0.0.0/0']), permit(['192.0.2.0/24', range])], PREFIXES, NO_HOST);
    const narrow = new AccessPolicy([permit([narrower])], PREFIXES, NO_HOST);
    for (const destination of inside) {
      const d = v4(destination);
      t.same(broad.check(CLIENT, d, 80), SPECIAL, `${destination} not through broad rules`);
      t.same(explicit.check(CLIENT, d, 80), permitted(2), `${destination} through ${range}`);
      const exact = new AccessPolicy([permit([`${destination}/32`])], PREFIXES, NO_HOST);
      t.same(exact.check(CLIENT, d, 80), permitted(1), `${destination} through ${destination}/32`);
    }
    const d = v4(narrower.split('/')[0]!);
    t.same(narrow.check(CLIENT, d, 80), permitted(1), `${narrower} names its own addresses`);
  }
  // Just outside each range: ordinary destinations.
  const broad = new AccessPolicy([permit(['0.0.0.0/0'])], PREFIXES, NO_HOST);
  for (const ordinary of ['1.0.0.0', '126.255.255.255', '128.0.0.0', '169.253.255.255', '169.255.0.0', '223.255.255.255']) {
    t.same(broad.check(CLIENT, v4(ordinary), 80), permitted(1), `${ordinary} is ordinary`);
  }
  // An explicit rule for one special range does not open another.
  const loopback = new AccessPolicy([permit(['127.0.0.0/8'])], PREFIXES, NO_HOST);
  t.same(loopback.check(CLIENT, v4('169.254.1.1'), 80), SPECIAL);
  t.same(loopback.check(CLIENT, v4('192.0.2.1'), 80), NO_MATCH);
  // 240.0.0.0/4 holds 255.255.255.255: naming the reserved range names it too.
  const reserved = new AccessPolicy([permit(['240.0.0.0/4'])], PREFIXES, NO_HOST);
  t.same(reserved.check(CLIENT, v4('255.255.255.255'), 80), permitted(1));
});

t.test('a broad permit is skipped; a deny applies; an explicit permit may follow', async (t) => {
  const policy = new AccessPolicy([permit(['0.0.0.0/0']), deny(['127.0.0.2/32']), permit(['127.0.0.0/8']), deny(['0.0.0.0/0'])], PREFIXES, NO_HOST);
  t.same(policy.check(CLIENT, v4('127.0.0.1'), 80), permitted(3), 'rule 1 skipped, rule 3 names it');
  t.same(policy.check(CLIENT, v4('127.0.0.2'), 80), denied(2), 'a deny beats a later explicit permit');
  t.same(policy.check(CLIENT, v4('224.0.0.1'), 80), denied(4), 'a broad deny matches special destinations');
  t.same(policy.check(CLIENT, v4('192.0.2.1'), 80), permitted(1));

  const broadDenyFirst = new AccessPolicy([deny(['0.0.0.0/0'], ['2001:db8:1::/48']), permit(['127.0.0.1/32'])], PREFIXES, NO_HOST);
  t.same(broadDenyFirst.check(CLIENT, v4('127.0.0.1'), 80), denied(1));
  t.same(broadDenyFirst.check(v6('2001:db8:2::1'), v4('127.0.0.1'), 80), permitted(2));
  // The explicit rule must also match on source and port.
  const scoped = new AccessPolicy([permit(['127.0.0.1/32'], ['2001:db8:1::/48'], [22])], PREFIXES, NO_HOST);
  t.same(scoped.check(CLIENT, v4('127.0.0.1'), 22), permitted(1));
  t.same(scoped.check(CLIENT, v4('127.0.0.1'), 80), SPECIAL);
  t.same(scoped.check(v6('2001:db8:2::1'), v4('127.0.0.1'), 22), SPECIAL);
});

t.test("the host's own and broadcast addresses", async (t) => {
  const host: HostAddresses = {
    own: [v4('192.0.2.10'), v4('198.51.100.1'), v4('127.0.0.1')],
    broadcasts: [v4('192.0.2.255'), v4('198.51.100.3')],
  };
  const broad = new AccessPolicy([permit(['192.0.2.0/24']), permit(['198.51.100.0/30']), permit(['0.0.0.0/0'])], PREFIXES, host);
  for (const address of ['192.0.2.10', '198.51.100.1', '192.0.2.255', '198.51.100.3']) {
    t.same(broad.check(CLIENT, v4(address), 80), SPECIAL, `${address} not through a subnet or 0.0.0.0/0`);
  }
  t.same(broad.check(CLIENT, v4('192.0.2.11'), 80), permitted(1), 'a neighbour is ordinary');
  t.same(broad.check(CLIENT, v4('198.51.100.2'), 80), permitted(2));
  t.same(broad.check(CLIENT, v4('198.51.100.4'), 80), permitted(3));

  const exact = new AccessPolicy([permit(['192.0.2.0/24']), permit(['10.0.0.0/8', '192.0.2.10/32']), permit(['192.0.2.255/32'])], PREFIXES, host);
  t.same(exact.check(CLIENT, v4('192.0.2.10'), 80), permitted(2), 'the exact /32 names an own address');
  t.same(exact.check(CLIENT, v4('192.0.2.255'), 80), permitted(3), 'the exact /32 names a broadcast');
  t.same(exact.check(CLIENT, v4('198.51.100.1'), 80), SPECIAL);

  // An own address inside a special range is named by that range as well.
  const loopback = new AccessPolicy([permit(['127.0.0.0/8'])], PREFIXES, host);
  t.same(loopback.check(CLIENT, v4('127.0.0.1'), 80), permitted(1));

  // Addresses may arrive as int32 (the result of `|`): they are the same addresses.
  t.same(exact.check(CLIENT, v4('192.0.2.10') | 0, 80), permitted(2));
  const signed = new AccessPolicy([permit(['192.0.2.0/24'])], PREFIXES, { own: [v4('192.0.2.10') | 0], broadcasts: [] });
  t.same(signed.check(CLIENT, v4('192.0.2.10'), 80), SPECIAL);
});

t.test('invalid rule networks throw when the policy is built', async (t) => {
  t.throws(() => new AccessPolicy([permit(['192.0.2.1/24'])], PREFIXES, NO_HOST), { message: /host bits set/ });
  t.throws(() => new AccessPolicy([permit(['0.0.0.0/0'], ['nonsense'])], PREFIXES, NO_HOST), {
    message: /not an IPv6 address/,
  });
});

t.test('hostIPv4Addresses', async (t) => {
  const iface = (address: string, netmask: string, family: 'IPv4' | 'IPv6' = 'IPv4') => ({ address, netmask, family });
  const host = hostIPv4Addresses({
    lo: [iface('127.0.0.1', '255.0.0.0'), iface('::1', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'IPv6')],
    eth0: [
      iface('192.0.2.10', '255.255.255.0'),
      iface('192.0.2.11', '255.255.255.0'), // a second address on the same subnet
      iface('2001:db8::10', 'ffff:ffff:ffff:ffff::', 'IPv6'),
    ],
    eth1: [iface('198.51.100.5', '255.255.255.252')], // /30
    p2p: [iface('203.0.113.0', '255.255.255.254')], // /31: no broadcast
    tun0: [iface('203.0.113.9', '255.255.255.255')], // /32: no broadcast
    odd: [iface('not an address', '255.255.255.0'), iface('10.0.0.1', 'bad mask')],
    down: undefined,
  });
  t.same(host, {
    own: ['127.0.0.1', '192.0.2.10', '192.0.2.11', '198.51.100.5', '203.0.113.0', '203.0.113.9'].map(v4),
    broadcasts: ['127.255.255.255', '192.0.2.255', '198.51.100.7'].map(v4),
  });
  t.same(hostIPv4Addresses({}), { own: [], broadcasts: [] });

  // The real table: whatever it holds, it is well formed.
  const real = hostIPv4Addresses();
  const expected = Object.values(os.networkInterfaces()).flatMap((list) =>
    (list ?? []).filter((info) => info.family === 'IPv4').map((info) => v4(info.address)),
  );
  t.same(
    real.own,
    [...new Set(expected)].sort((a, b) => a - b),
  );
  for (const address of [...real.own, ...real.broadcasts]) t.ok(Number.isInteger(address) && address >= 0);
});
