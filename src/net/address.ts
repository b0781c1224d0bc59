import { Address4, Address6 } from 'ip-address';

/** Prefix lengths RFC 6052 §2.2 defines for IPv4-embedded IPv6 addresses. */
export const RFC6052_LENGTHS: readonly number[] = [32, 40, 48, 56, 64, 96];

const ALL_ONES_128 = (1n << 128n) - 1n;

/** An IPv6 address as a 128-bit integer, or undefined when `text` is not an IPv6 address. */
export function parseIPv6(text: string): bigint | undefined {
  // Every connection parses two addresses, and ip-address's parser costs several µs and much
  // garbage: the plain forms the kernel prints are read here, anything else by ip-address.
  const quick = parsePlainIPv6(text);
  if (quick !== undefined) return quick;
  // Address6 also accepts a prefix length ("2001:db8::/64") and a zone ("fe80::1%eth0"):
  // neither is an address.
  if (text.includes('/') || text.includes('%') || !Address6.isValid(text)) return undefined;
  return new Address6(text).bigInt();
}

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;
const DOTTED_QUAD = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/**
 * Strictly the RFC 4291 §2.2 text forms: eight hex groups, or fewer around one "::", the last
 * two optionally as a dotted quad. Undefined for anything else (the caller then asks
 * ip-address, which also rejects what is invalid), so this never accepts what it should not.
 */
export function parsePlainIPv6(text: string): bigint | undefined {
  const gap = text.indexOf('::');
  if (gap !== text.lastIndexOf('::')) return undefined;
  const head = gap < 0 ? text : text.slice(0, gap);
  const tail = gap < 0 ? '' : text.slice(gap + 2);
  const left = head === '' ? [] : head.split(':');
  const right = tail === '' ? [] : tail.split(':');
  const groups: number[] = [];
  const read = (parts: string[], last: boolean): boolean => {
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i] as string;
      if (HEX_GROUP.test(part)) {
        groups.push(parseInt(part, 16));
      } else if (last && i === parts.length - 1 && DOTTED_QUAD.test(part)) {
        const [a, b, c, d] = part.split('.').map(Number) as [number, number, number, number];
        groups.push((a << 8) | b, (c << 8) | d);
      } else {
        return false;
      }
    }
    return true;
  };
  if (!read(left, gap < 0) || !read(right, true)) return undefined;
  const leftCount = gap < 0 ? groups.length : groups.length - (right.length === 0 ? 0 : countGroups(right));
  if (gap < 0 ? groups.length !== 8 : groups.length > 7) return undefined;
  const words = new Array<number>(8).fill(0);
  for (let i = 0; i < leftCount; i++) words[i] = groups[i] as number;
  for (let i = leftCount, j = 8 - (groups.length - leftCount); i < groups.length; i++, j++) words[j] = groups[i] as number;
  return (
    (BigInt((((words[0] as number) << 16) | (words[1] as number)) >>> 0) << 96n) |
    (BigInt((((words[2] as number) << 16) | (words[3] as number)) >>> 0) << 64n) |
    (BigInt((((words[4] as number) << 16) | (words[5] as number)) >>> 0) << 32n) |
    BigInt((((words[6] as number) << 16) | (words[7] as number)) >>> 0)
  );
}

/** Groups a part list stands for: a trailing dotted quad is two. */
function countGroups(parts: readonly string[]): number {
  return parts.length + (parts[parts.length - 1]?.includes('.') ? 1 : 0);
}

/** The canonical (RFC 5952) text of a 128-bit IPv6 address. */
export function formatIPv6(value: bigint): string {
  return Address6.fromBigInt(value).correctForm();
}

/** An IPv4 address as an unsigned 32-bit integer, or undefined when `text` is not dotted-quad. */
export function parseIPv4(text: string): number | undefined {
  // ip-address accepts forms like "1.2.3" only with a mask; require four decimal octets.
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(text) || !Address4.isValid(text)) return undefined;
  return Number(new Address4(text).bigInt());
}

/** Dotted-quad text of an unsigned 32-bit integer. */
export function formatIPv4(value: number): string {
  return `${value >>> 24}.${(value >>> 16) & 255}.${(value >>> 8) & 255}.${value & 255}`;
}

/** An IPv6 network: the base address (host bits zero) and the prefix length. */
export interface Network6 {
  readonly base: bigint;
  readonly length: number;
  /** Canonical text, `2001:db8::/32`. */
  readonly text: string;
}

/** An IPv4 network: the base address (host bits zero) and the prefix length. */
export interface Network4 {
  readonly base: number;
  readonly length: number;
  /** Canonical text, `192.0.2.0/24`. */
  readonly text: string;
}

/** The netmask of an IPv6 prefix length. */
export function mask6(length: number): bigint {
  return length === 0 ? 0n : (ALL_ONES_128 << BigInt(128 - length)) & ALL_ONES_128;
}

/** The netmask of an IPv4 prefix length, as an unsigned 32-bit number. */
export function mask4(length: number): number {
  return length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
}

function splitNetwork(text: string, max: number): [string, number] {
  const slash = text.indexOf('/');
  if (slash < 0) return [text, max];
  const lengthText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lengthText) || Number(lengthText) > max) {
    throw new Error(`"${text}" has an invalid prefix length (expected /0 to /${max})`);
  }
  return [text.slice(0, slash), Number(lengthText)];
}

/**
 * Parses `addr/len` (or a bare address, taken as /128). Throws an Error whose message says
 * what is wrong: not an IPv6 address, a bad length, or host bits set.
 */
export function parseNetwork6(text: string): Network6 {
  const [addressText, length] = splitNetwork(text, 128);
  const address = parseIPv6(addressText);
  if (address === undefined) {
    throw new Error(`"${text}" is not an IPv6 address or network`);
  }
  const base = address & mask6(length);
  if (base !== address) {
    throw new Error(`"${text}" has host bits set (the network is ${formatIPv6(base)}/${length})`);
  }
  return { base, length, text: `${formatIPv6(base)}/${length}` };
}

/** Parses `a.b.c.d/len` (or a bare address, taken as /32); throws like parseNetwork6. */
export function parseNetwork4(text: string): Network4 {
  const [addressText, length] = splitNetwork(text, 32);
  const address = parseIPv4(addressText);
  if (address === undefined) throw new Error(`"${text}" is not an IPv4 address or network`);
  const base = (address & mask4(length)) >>> 0;
  if (base !== address) {
    throw new Error(`"${text}" has host bits set (the network is ${formatIPv4(base)}/${length})`);
  }
  return { base, length, text: `${formatIPv4(base)}/${length}` };
}

/** Whether a 128-bit address lies in the network. */
export function inNetwork6(network: Network6, address: bigint): boolean {
  return (address & mask6(network.length)) === network.base;
}

/** Whether a 32-bit address lies in the network. */
export function inNetwork4(network: Network4, address: number): boolean {
  return (address & mask4(network.length)) >>> 0 === network.base;
}

/** Whether network `inner` lies entirely inside network `outer`. */
export function network4Within(inner: Network4, outer: Network4): boolean {
  return inner.length >= outer.length && inNetwork4(outer, inner.base);
}

/** Whether network `inner` lies entirely inside network `outer` (or is it). */
export function network6Within(inner: Pick<Network6, 'base' | 'length'>, outer: Pick<Network6, 'base' | 'length'>): boolean {
  return inner.length >= outer.length && (inner.base & mask6(outer.length)) === outer.base;
}

/** Whether two IPv6 networks share any address. */
export function networks6Overlap(a: Network6, b: Network6): boolean {
  return a.length <= b.length ? inNetwork6(a, b.base) : inNetwork6(b, a.base);
}

/** IPv4-mapped IPv6 addresses (RFC 4291 §2.5.5.2): how a dual-stack socket shows an IPv4 peer. */
export const IPV4_MAPPED = '::ffff:0:0/96';
/** IPv4-compatible IPv6 addresses (RFC 4291 §2.5.5.1, deprecated); ::1 and :: lie in it too. */
export const IPV4_COMPATIBLE = '::/96';

/** IPv6 ranges that can never be a translation prefix, with the reason. */
const RESERVED_FOR_PREFIX: readonly [Network6, string][] = [
  [parseNetwork6(IPV4_MAPPED), `IPv4-mapped addresses (${IPV4_MAPPED})`],
  [parseNetwork6(IPV4_COMPATIBLE), `IPv4-compatible addresses (${IPV4_COMPATIBLE})`],
  [parseNetwork6('fe80::/10'), 'link-local addresses (fe80::/10)'],
  [parseNetwork6('ff00::/8'), 'multicast addresses (ff00::/8)'],
];

/** The RFC 6052 well-known prefix: it may only embed global IPv4 addresses (RFC 6052 §3.1). */
export const WELL_KNOWN_PREFIX = '64:ff9b::/96';

/**
 * One translation prefix and the RFC 6052 layout for its length: where the 32 IPv4 bits sit,
 * skipping bits 64..71 (the "u" octet, which must be zero), with a zero suffix after them.
 */
export class TranslationPrefix {
  readonly network: Network6;
  /** Bit offsets (from the most significant bit) of the IPv4 bits before and after the u octet. */
  private readonly highBits: number;

  private constructor(network: Network6) {
    this.network = network;
    this.highBits = Math.max(0, Math.min(32, 64 - network.length));
  }

  /** Parses and checks a prefix; throws an Error that says why it cannot be one. */
  static parse(text: string): TranslationPrefix {
    if (!text.includes('/')) throw new Error(`"${text}" needs a prefix length, such as ${text}/96`);
    const network = parseNetwork6(text);
    if (!RFC6052_LENGTHS.includes(network.length)) {
      throw new Error(`"${text}" has length /${network.length}; RFC 6052 allows /${RFC6052_LENGTHS.join(', /')}`);
    }
    for (const [reserved, what] of RESERVED_FOR_PREFIX) {
      if (networks6Overlap(reserved, network)) {
        throw new Error(`"${text}" overlaps ${what}, which cannot be a translation prefix`);
      }
    }
    // RFC 6052 §2.2: bits 64..71 MUST be zero; only a /96 prefix includes them.
    if (((network.base >> 56n) & 0xffn) !== 0n) {
      throw new Error(`"${text}" has bits 64 to 71 set, which RFC 6052 §2.2 requires to be zero`);
    }
    return new TranslationPrefix(network);
  }

  /** Canonical text, `2001:db8:5999::/96`. */
  get text(): string {
    return this.network.text;
  }

  get length(): number {
    return this.network.length;
  }

  /** Whether the address carries this prefix (whatever its u octet and suffix). */
  contains(address: bigint): boolean {
    return inNetwork6(this.network, address);
  }

  /**
   * The IPv4 address embedded in `address`, or undefined when the address is outside the
   * prefix or is not a well-formed translation (non-zero u octet or suffix), so that every
   * IPv4 address has exactly one translated IPv6 address.
   */
  toIPv4(address: bigint): number | undefined {
    if (!this.contains(address)) return undefined;
    const length = this.network.length;
    if (length === 96) return Number(address & 0xffffffffn);
    // Bits after the prefix: [high IPv4 bits][u octet (if the prefix ends at or before bit 64)][low IPv4 bits][suffix]
    const high = this.highBits;
    const low = 32 - high;
    const highValue = (address >> BigInt(128 - length - high)) & ((1n << BigInt(high)) - 1n);
    const lowShift = 128 - 72 - low;
    const lowValue = (address >> BigInt(lowShift)) & ((1n << BigInt(low)) - 1n);
    const expected = this.network.base | (highValue << BigInt(128 - length - high)) | (lowValue << BigInt(lowShift));
    if (expected !== address) return undefined; // u octet or suffix not zero
    return Number((highValue << BigInt(low)) | lowValue);
  }

  /** The translated IPv6 address for an IPv4 address. */
  toIPv6(ipv4: number): bigint {
    const value = BigInt(ipv4 >>> 0);
    const length = this.network.length;
    if (length === 96) return this.network.base | value;
    const high = this.highBits;
    const low = 32 - high;
    const highValue = value >> BigInt(low);
    const lowValue = value & ((1n << BigInt(low)) - 1n);
    return this.network.base | (highValue << BigInt(128 - length - high)) | (lowValue << BigInt(128 - 72 - low));
  }
}

/** A translation found for a local (dialled) address. */
export interface Translation {
  readonly prefix: TranslationPrefix;
  readonly ipv4: number;
}

/** Finds which prefix, if any, a dialled IPv6 address belongs to, and the IPv4 it embeds. */
export function translate(prefixes: readonly TranslationPrefix[], address: bigint): Translation | undefined {
  for (const prefix of prefixes) {
    const ipv4 = prefix.toIPv4(address);
    if (ipv4 !== undefined) return { prefix, ipv4 };
  }
  return undefined;
}

/** An address and port to listen on, `[2001:db8::1]:9464` or `192.0.2.1:9464`. */
export interface ListenAddress {
  readonly host: string;
  readonly port: number;
  /** Canonical text: the address in canonical form, IPv6 in brackets. */
  readonly text: string;
}

/** Parses `[v6]:port` or `v4:port`; throws an Error saying what is wrong. */
export function parseListenAddress(text: string): ListenAddress {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (m === null || port < 1 || port > 65535) {
    throw new Error(`"${text}" is not an address and port such as [::1]:9464 or 127.0.0.1:9464 (port 1 to 65535)`);
  }
  if (m[1] !== undefined) {
    const address = parseIPv6(m[1]);
    if (address === undefined) throw new Error(`"${text}": ${m[1]} is not an IPv6 address`);
    const host = formatIPv6(address);
    return { host, port, text: `[${host}]:${port}` };
  }
  const address = parseIPv4(m[2] as string);
  if (address === undefined) throw new Error(`"${text}": ${m[2]} is not an IPv4 address (write an IPv6 address in brackets)`);
  const host = formatIPv4(address);
  return { host, port, text: `${host}:${port}` };
}
