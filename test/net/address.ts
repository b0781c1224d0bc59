import { Address6 } from 'ip-address';
import t from 'tap';
import {
  RFC6052_LENGTHS,
  TranslationPrefix,
  WELL_KNOWN_PREFIX,
  formatIPv4,
  formatIPv6,
  inNetwork4,
  inNetwork6,
  network4Within,
  networks6Overlap,
  parseIPv4,
  parseIPv6,
  parseNetwork4,
  parseNetwork6,
  parsePlainIPv6,
  translate,
} from '../../src/net/address.js';
import { v4, v6 } from '../fixtures/addresses.js';
import { prng } from '../fixtures/prng.js';

t.test('parseIPv6 and formatIPv6', async (t) => {
  t.equal(parseIPv6('::'), 0n);
  t.equal(parseIPv6('::1'), 1n);
  t.equal(parseIPv6('2001:DB8::1'), 0x20010db8_0000_0000_0000_0000_0000_0001n);
  t.equal(parseIPv6('::ffff:192.0.2.33'), 0xffff_c000_0221n);
  t.equal(parseIPv6('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'), (1n << 128n) - 1n);
  for (const bad of [
    '',
    'g::',
    '1::2::3',
    '1:2:3:4:5:6:7:8:9',
    '12345::',
    '[::1]',
    ' ::1',
    '::1 ',
    '::ffff:1.2.3',
    '::ffff:256.1.1.1',
    '192.0.2.1',
    // Address6 takes these, but they are a network and a scoped address, not an address.
    '2001:db8::/64',
    '::/0',
    'fe80::1%eth0',
    'fe80::1%',
  ]) {
    t.equal(parseIPv6(bad), undefined, `rejects ${JSON.stringify(bad)}`);
  }

  // RFC 5952: lower case, longest run of zeros compressed (the first of equal runs), never one
  // lone zero field.
  const cases: [string, string][] = [
    ['2001:0DB8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['1:0:0:0:0:0:0:0', '1::'],
  ];
  for (const [input, canonical] of cases) {
    t.equal(formatIPv6(v6(input)), canonical, `${input} → ${canonical}`);
    t.equal(v6(formatIPv6(v6(input))), v6(input), `${input} round trip`);
  }
});

t.test('parseIPv4 and formatIPv4', async (t) => {
  t.equal(parseIPv4('0.0.0.0'), 0);
  t.equal(parseIPv4('192.0.2.33'), 0xc0000221);
  t.equal(parseIPv4('255.255.255.255'), 0xffffffff);
  for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '1.2.3.4/24', '01.2.3.4', '1.2.3.04', ' 1.2.3.4', '0x1.2.3.4', '1234.1.1.1', '::1']) {
    t.equal(parseIPv4(bad), undefined, `rejects ${JSON.stringify(bad)}`);
  }
  t.equal(formatIPv4(0), '0.0.0.0');
  t.equal(formatIPv4(0xc0000221), '192.0.2.33');
  t.equal(formatIPv4(0xffffffff), '255.255.255.255');
  t.equal(formatIPv4(-1), '255.255.255.255', 'an int32 from bit operations formats as unsigned');
  for (const text of ['10.20.30.40', '172.16.0.1', '1.0.0.255']) t.equal(formatIPv4(v4(text)), text);
});

t.test('parseNetwork6', async (t) => {
  t.same(parseNetwork6('2001:DB8::/32'), { base: v6('2001:db8::'), length: 32, text: '2001:db8::/32' });
  t.same(parseNetwork6('::1'), { base: 1n, length: 128, text: '::1/128' }, 'a bare address is a /128');
  t.same(parseNetwork6('::/0'), { base: 0n, length: 0, text: '::/0' });
  t.throws(() => parseNetwork6('2001:db8::/129'), {
    message: '"2001:db8::/129" has an invalid prefix length (expected /0 to /128)',
  });
  t.throws(() => parseNetwork6('2001:db8::/'), { message: /invalid prefix length/ });
  t.throws(() => parseNetwork6('2001:db8::/-1'), { message: /invalid prefix length/ });
  t.throws(() => parseNetwork6('2001:db8::/1/2'), { message: /invalid prefix length/ });
  t.throws(() => parseNetwork6('2001:db8::/0032'), { message: /invalid prefix length/ });
  t.throws(() => parseNetwork6('2001:db8::x/32'), {
    message: '"2001:db8::x/32" is not an IPv6 address or network',
  });
  t.throws(() => parseNetwork6('fe80::%eth0/64'), { message: /is not an IPv6 address/ });
  t.throws(() => parseNetwork6('2001:db8::1/64'), {
    message: '"2001:db8::1/64" has host bits set (the network is 2001:db8::/64)',
  });
});

t.test('parseNetwork4', async (t) => {
  t.same(parseNetwork4('192.0.2.0/24'), { base: 0xc0000200, length: 24, text: '192.0.2.0/24' });
  t.same(parseNetwork4('192.0.2.1'), { base: 0xc0000201, length: 32, text: '192.0.2.1/32' });
  t.same(parseNetwork4('0.0.0.0/0'), { base: 0, length: 0, text: '0.0.0.0/0' });
  t.same(parseNetwork4('255.255.255.255/32'), { base: 0xffffffff, length: 32, text: '255.255.255.255/32' });
  t.throws(() => parseNetwork4('192.0.2.0/33'), {
    message: '"192.0.2.0/33" has an invalid prefix length (expected /0 to /32)',
  });
  t.throws(() => parseNetwork4('192.0.2/24'), { message: '"192.0.2/24" is not an IPv4 address or network' });
  t.throws(() => parseNetwork4('192.0.2.1/24'), {
    message: '"192.0.2.1/24" has host bits set (the network is 192.0.2.0/24)',
  });
});

t.test('containment and overlap', async (t) => {
  const net4 = parseNetwork4('10.0.0.0/8');
  t.ok(inNetwork4(net4, v4('10.255.255.255')));
  t.notOk(inNetwork4(net4, v4('11.0.0.0')));
  t.ok(inNetwork4(parseNetwork4('0.0.0.0/0'), 0xffffffff));
  t.ok(inNetwork4(parseNetwork4('255.255.255.255/32'), 0xffffffff));
  t.ok(network4Within(parseNetwork4('10.1.0.0/16'), net4));
  t.ok(network4Within(net4, net4));
  t.notOk(network4Within(net4, parseNetwork4('10.1.0.0/16')), 'a wider network is not within');
  t.notOk(network4Within(parseNetwork4('11.0.0.0/16'), net4));

  const net6 = parseNetwork6('2001:db8::/32');
  t.ok(inNetwork6(net6, v6('2001:db8:ffff::1')));
  t.notOk(inNetwork6(net6, v6('2001:db9::')));
  t.ok(inNetwork6(parseNetwork6('::/0'), (1n << 128n) - 1n));
  t.ok(networks6Overlap(net6, parseNetwork6('2001:db8:1::/48')));
  t.ok(networks6Overlap(parseNetwork6('2001:db8:1::/48'), net6), 'overlap is symmetric');
  t.notOk(networks6Overlap(net6, parseNetwork6('2001:db9::/48')));
  t.notOk(networks6Overlap(parseNetwork6('2001:db9::/48'), net6));
});

t.test('RFC 6052 §2.4 examples', async (t) => {
  const ipv4 = v4('192.0.2.33');
  const table: [string, string][] = [
    ['2001:db8::/32', '2001:db8:c000:221::'],
    ['2001:db8:100::/40', '2001:db8:1c0:2:21::'],
    ['2001:db8:122::/48', '2001:db8:122:c000:2:2100::'],
    ['2001:db8:122:300::/56', '2001:db8:122:3c0:0:221::'],
    ['2001:db8:122:344::/64', '2001:db8:122:344:c0:2:2100::'],
    ['2001:db8:122:344::/96', '2001:db8:122:344::192.0.2.33'],
    [WELL_KNOWN_PREFIX, '64:ff9b::192.0.2.33'],
  ];
  for (const [prefixText, translated] of table) {
    const prefix = TranslationPrefix.parse(prefixText);
    t.equal(prefix.text, prefixText);
    t.equal(formatIPv6(prefix.toIPv6(ipv4)), formatIPv6(v6(translated)), `${prefixText} embeds 192.0.2.33`);
    t.equal(prefix.toIPv4(v6(translated)), ipv4, `${translated} carries 192.0.2.33`);
  }
});

t.test('TranslationPrefix.parse rejects what cannot be a prefix', async (t) => {
  t.throws(() => TranslationPrefix.parse('2001:db8::'), {
    message: '"2001:db8::" needs a prefix length, such as 2001:db8::/96',
  });
  for (const length of [0, 16, 31, 33, 60, 72, 80, 95, 97, 128]) {
    const text = length === 0 ? '::/0' : `2000::/${length}`;
    t.throws(() => TranslationPrefix.parse(text), {
      message: `"${text}" has length /${length}; RFC 6052 allows /32, /40, /48, /56, /64, /96`,
    });
  }
  t.throws(() => TranslationPrefix.parse('2001:db8::1/96'), { message: /has host bits set/ });
  t.throws(() => TranslationPrefix.parse('nonsense/96'), { message: /is not an IPv6 address/ });
  const reserved: [string, string][] = [
    ['::ffff:0:0/96', 'IPv4-mapped addresses (::ffff:0:0/96)'],
    ['::/96', 'IPv4-compatible addresses (::/96)'],
    ['::/32', 'IPv4-mapped addresses (::ffff:0:0/96)'], // and ::/96: the first is named
    ['::/64', 'IPv4-mapped addresses (::ffff:0:0/96)'],
    ['fe80::/32', 'link-local addresses (fe80::/10)'],
    ['febf:ffff::/32', 'link-local addresses (fe80::/10)'],
    ['ff02::/96', 'multicast addresses (ff00::/8)'],
    ['ff00::/32', 'multicast addresses (ff00::/8)'],
  ];
  for (const [text, what] of reserved) {
    t.throws(() => TranslationPrefix.parse(text), {
      message: `"${text}" overlaps ${what}, which cannot be a translation prefix`,
    });
  }
  t.throws(() => TranslationPrefix.parse('2001:db8:0:0:100::/96'), {
    message: '"2001:db8:0:0:100::/96" has bits 64 to 71 set, which RFC 6052 §2.2 requires to be zero',
  });
  t.ok(TranslationPrefix.parse('2001:db8:0:0:ff::/96'), 'bits 72..95 of a /96 may be set');
  t.ok(TranslationPrefix.parse('fec0::/32'), 'just past fe80::/10');
});

t.test('toIPv4 refuses what is not a well-formed translation', async (t) => {
  for (const [prefixText, translated] of [
    ['2001:db8::/32', '2001:db8:c000:221::'],
    ['2001:db8:100::/40', '2001:db8:1c0:2:21::'],
    ['2001:db8:122::/48', '2001:db8:122:c000:2:2100::'],
    ['2001:db8:122:300::/56', '2001:db8:122:3c0:0:221::'],
    ['2001:db8:122:344::/64', '2001:db8:122:344:c0:2:2100::'],
  ] as const) {
    const prefix = TranslationPrefix.parse(prefixText);
    const address = v6(translated);
    t.equal(prefix.toIPv4(address | (1n << 56n)), undefined, `${prefixText}: u octet bit 71`);
    t.equal(prefix.toIPv4(address | (0x80n << 56n)), undefined, `${prefixText}: u octet bit 64`);
    t.equal(prefix.toIPv4(address | 1n), undefined, `${prefixText}: last suffix bit`);
    const suffixTop = 128n - BigInt(prefix.length) - 40n; // first bit after IPv4 + u octet
    t.equal(prefix.toIPv4(address | (1n << (suffixTop - 1n))), undefined, `${prefixText}: first suffix bit`);
    t.equal(prefix.contains(address | 1n), true, 'still inside the prefix');
    t.equal(prefix.toIPv4(v6('2001:db9::c000:221')), undefined, `${prefixText}: outside the prefix`);
  }
  const p96 = TranslationPrefix.parse('2001:db8:5999::/96');
  t.equal(p96.toIPv4(v6('2001:db8:5999::c0a8:102')), v4('192.168.1.2'));
  t.equal(p96.toIPv4(v6('2001:db8:5999::1:c0a8:102')), undefined, 'outside the /96');
  t.equal(p96.toIPv6(-1), v6('2001:db8:5999::ffff:ffff'), 'an int32 from bit operations is taken as unsigned');
  t.equal(p96.toIPv4(v6('2001:db8:5999::ffff:ffff')), 0xffffffff);
});

t.test('translate', async (t) => {
  const a = TranslationPrefix.parse('2001:db8:5999::/96');
  const b = TranslationPrefix.parse('64:ff9b::/96');
  const c = TranslationPrefix.parse('2001:db8:122::/48');
  const prefixes = [a, b, c];
  t.same(translate(prefixes, v6('64:ff9b::192.0.2.33')), { prefix: b, ipv4: v4('192.0.2.33') });
  t.same(translate(prefixes, v6('2001:db8:5999::c0a8:102')), { prefix: a, ipv4: v4('192.168.1.2') });
  t.same(translate(prefixes, v6('2001:db8:122:c000:2:2100::')), { prefix: c, ipv4: v4('192.0.2.33') });
  t.equal(translate(prefixes, v6('2001:db8:122:c000:2:2100::1')), undefined, 'non-zero suffix');
  t.equal(translate(prefixes, v6('2001:db8:1::1')), undefined);
  t.equal(translate([], v6('64:ff9b::1')), undefined);
});

/**
 * RFC 6052 §2.2's figure, independently of src/net/address.ts: the prefix's octets, then the four
 * IPv4 octets from octet length/8 on, jumping over octet 8 (bits 64..71), then zeros.
 */
function embed(prefixBytes: Buffer, length: number, ipv4: number): Buffer {
  const bytes = Buffer.alloc(16);
  prefixBytes.copy(bytes, 0, 0, length / 8);
  const ipv4Bytes = Buffer.alloc(4);
  ipv4Bytes.writeUInt32BE(ipv4);
  let at = length / 8;
  for (const octet of ipv4Bytes) {
    if (at === 8) at++;
    bytes[at++] = octet;
  }
  return bytes;
}

/** Text of 16 bytes as WHATWG URL (Node's own serializer, RFC 5952 style) prints it. */
function urlForm(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

t.test('property: TranslationPrefix agrees with an independent RFC 6052 layout', async (t) => {
  const seed = Number(process.env.FAITHD6_SEED ?? Math.floor(Math.random() * 2 ** 32));
  t.comment(`seed ${seed} (rerun with FAITHD6_SEED=${seed})`);
  const random = prng(seed);
  const failures: string[] = [];
  let checked = 0;
  draws: for (let i = 0; i < 10_000; i++) {
    const ipv4 = random();
    for (const length of RFC6052_LENGTHS) {
      let prefix: TranslationPrefix | undefined;
      let prefixBytes = Buffer.alloc(16);
      while (prefix === undefined) {
        prefixBytes = Buffer.alloc(16);
        for (let b = 0; b < length / 8; b++) prefixBytes[b] = random() & 0xff;
        prefixBytes[8] = 0; // the u octet, inside a /96 prefix
        try {
          prefix = TranslationPrefix.parse(`${urlForm(prefixBytes)}/${length}`);
        } catch {
          // Drew a reserved range (fe80::/10, ff00::/8, …): draw again.
        }
      }
      const expected = embed(prefixBytes, length, ipv4);
      const expectedText = urlForm(expected);
      const translated = prefix.toIPv6(ipv4);
      const actualText = formatIPv6(translated);
      const back = prefix.toIPv4(BigInt(`0x${expected.toString('hex')}`));
      checked++;
      if (actualText !== expectedText || back !== ipv4 || !prefix.contains(translated)) {
        failures.push(`${formatIPv4(ipv4)} via ${prefix.text}: toIPv6 ${actualText}, expected ${expectedText}; toIPv4 ${back}`);
      }
      // Any bit set in the u octet or the suffix must make it a non-translation.
      const spare = [8, ...Array.from({ length: 16 - (length / 8 + 5) }, (_, k) => length / 8 + 5 + k)];
      const corrupt = Buffer.from(expected);
      const index = spare[random() % spare.length]!;
      corrupt[index]! |= 1 << (random() % 8);
      const corrupted = prefix.toIPv4(BigInt(`0x${corrupt.toString('hex')}`));
      if (corrupted !== undefined) {
        failures.push(`${urlForm(corrupt)} via ${prefix.text} (octet ${index} set) gave ${corrupted}`);
      }
      if (failures.length >= 10) break draws;
    }
  }
  t.same(failures, [], `no mismatch (seed ${seed})`);
  t.equal(checked, 10_000 * RFC6052_LENGTHS.length, 'every address through every length');
});

t.test('the quick parser agrees with ip-address, and never accepts what it rejects', async (t) => {
  const seed = Number(process.env.FAITHD6_SEED ?? Date.now() % 1e9);
  t.comment(`quick parser: seed ${seed} (rerun with FAITHD6_SEED=${seed})`);
  const next = prng(seed);
  const word = (): number => (next() & 1 ? next() & 0xffff : 0); // half zeros, so "::" appears
  let checked = 0;
  let mismatches = 0;
  const same = (text: string, expected: bigint): void => {
    checked += 1;
    if (parsePlainIPv6(text) !== expected) {
      mismatches += 1;
      if (mismatches <= 5) t.fail(`quick parser misread ${text}`);
    }
  };
  for (let i = 0; i < 5_000; i++) {
    const words = Array.from({ length: 8 }, word);
    const value = words.reduce((acc, w) => (acc << 16n) | BigInt(w), 0n);
    const full = words.map((w) => w.toString(16)).join(':');
    same(full, value);
    same(full.toUpperCase(), value);
    same(formatIPv6(value), value); // RFC 5952 compressed
    same(new URL(`http://[${full}]/`).hostname.slice(1, -1), value); // as Node prints it
    const dotted = `${words
      .slice(0, 6)
      .map((w) => w.toString(16))
      .join(':')}:${formatIPv4(Number(value & 0xffffffffn))}`;
    same(dotted, value);
  }
  t.equal(mismatches, 0, `${checked} texts of 5,000 random addresses read alike`);
  const junk = [
    '',
    ':',
    ':::',
    '1::2::3',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4::5:6:7:8',
    'g::1',
    '12345::',
    '::1.2.3',
    '::1.2.3.256',
    '1.2.3.4::',
    '::1.2.3.4:5',
    ' ::1',
    '::1 ',
    '1:',
    ':1',
    '::1:',
    'fe80::1%eth0',
    '2001:db8::/64',
    '::01.2.3.4',
  ];
  for (const text of junk) {
    const quick = parsePlainIPv6(text);
    if (quick !== undefined) t.ok(Address6.isValid(text), `accepted only what ip-address accepts: ${JSON.stringify(text)}`);
    t.equal(
      parseIPv6(text) === undefined,
      !(Address6.isValid(text) && !text.includes('%') && !text.includes('/')),
      `parseIPv6(${JSON.stringify(text)}) agrees`,
    );
  }
});
