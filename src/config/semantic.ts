/**
 * The checks no schema can express, in one place: prefixes that overlap, a port given to two
 * services, rules naming ports that are not services, and warnings about what the rules
 * permit. They run on what the schema walk accepted, and skip what it already found wrong
 * (so that one mistake is not reported again as another).
 */
import { RFC6052_LENGTHS, TranslationPrefix, WELL_KNOWN_PREFIX, network4Within, parseNetwork4, type Network4, type Network6 } from '../net/address.js';
import { NON_GLOBAL_IPV4 } from '../net/non-global.js';
import type { Field, Report } from './report.js';

/** The walk's result: the config's shape, with wrong values left out. */
interface Walked {
  prefixes?: (string | undefined)[];
  source?: string | null;
  services?: ({ port?: number; backendPort?: number; source?: string | null; protocol?: string; proxyProtocol?: string } | undefined)[];
  rules?: ({ action?: string; to?: (string | undefined)[]; ports?: (number | undefined)[] } | undefined)[];
}

/** What the checks know of the host the config is for. */
export interface HostFacts {
  /** Its IPv4 addresses, as `a.b.c.d`; undefined when the config is not checked against a host. */
  readonly ipv4?: readonly string[];
}

/** Checks `value` (mutated only to fill in defaults that depend on other keys). */
export function checkSemantics(value: Walked, report: Report, fields: ReadonlyMap<string, Field>, host: HostFacts = {}): void {
  const at = (path: string) => fields.get(path);
  if (host.ipv4 !== undefined) checkSources(value, report, at, host.ipv4);
  const wellKnown = checkPrefixes(value.prefixes ?? [], report, at);
  const ports = checkServices(value.services ?? [], report, at);
  checkRules(value.rules, report, at, report.clean('services') && value.services !== undefined ? ports : undefined, wellKnown);
}

/** Refuses overlapping prefixes; returns whether the well-known prefix is among them. */
function checkPrefixes(prefixes: readonly (string | undefined)[], report: Report, at: (path: string) => Field | undefined): boolean {
  const accepted = new AcceptedPrefixes<{ text: string; path: string }>();
  let wellKnown = false;
  prefixes.forEach((text, index) => {
    if (text === undefined) return;
    const field = single(at, 'prefixes', index);
    const prefix = TranslationPrefix.parse(text);
    const other = accepted.overlapping(prefix.network);
    if (other !== undefined) {
      const relation = other.text === prefix.text ? 'repeats' : 'overlaps';
      report.error(field, `"${sourceText(field, text)}" ${relation} ${other.path} (${other.text}); prefixes must not overlap`);
      return;
    }
    accepted.add(prefix.network, { text: prefix.text, path: field.path });
    if (prefix.text === WELL_KNOWN_PREFIX) wellKnown = true;
  });
  return wellKnown;
}

/** A source address must be one of this host's: connecting from another fails at every connection. */
function checkSources(value: Walked, report: Report, at: (path: string) => Field | undefined, own: readonly string[]): void {
  const sources: [string, string | null | undefined][] = [['source', value.source]];
  value.services?.forEach((service, index) => sources.push([`services[${index}].source`, service?.source]));
  for (const [path, source] of sources) {
    const field = at(path);
    if (typeof source !== 'string' || field === undefined || own.includes(source)) continue;
    report.error(
      field,
      `${source} is not an address of this host (its IPv4 addresses: ${own.join(', ') || 'none'}); add it to an interface, or remove it here`,
    );
  }
}

/** A port may be one service only; backendPort defaults to port. Returns the service ports. */
function checkServices(services: Walked['services'] & object, report: Report, at: (path: string) => Field | undefined): Set<number> {
  const seen = new Map<number, string>();
  services.forEach((service, index) => {
    if (service?.port === undefined) return;
    const path = `services[${index}]`;
    const first = seen.get(service.port);
    if (first !== undefined) {
      report.error(at(`${path}.port`) as Field, `port ${service.port} is already a service (${first}); each port may appear once`);
      return;
    }
    seen.set(service.port, path);
    service.backendPort ??= service.port;
    const proxy = at(`${path}.proxyProtocol`);
    if (service.protocol === 'ftp' && service.proxyProtocol !== undefined && service.proxyProtocol !== 'none' && proxy !== undefined) {
      report.error(
        proxy,
        'an FTP service cannot send a PROXY protocol header: its data connections could not carry one; remove proxyProtocol or protocol: ftp',
      );
    }
  });
  return new Set(seen.keys());
}

function checkRules(
  rules: Walked['rules'],
  report: Report,
  at: (path: string) => Field | undefined,
  servicePorts: ReadonlySet<number> | undefined,
  wellKnown: boolean,
): void {
  if (rules === undefined) return;
  if (rules.length === 0) report.warn(at('rules') as Field, 'no rules: every connection will be denied');
  rules.forEach((rule, index) => {
    const path = `rules[${index}]`;
    if (rule === undefined) return;
    (rule.ports ?? []).forEach((port, i) => {
      if (servicePorts === undefined || port === undefined || servicePorts.has(port)) return;
      const field = single(at, `${path}.ports`, i);
      report.error(field, `port ${port} is not a service port (services: ${[...servicePorts].join(', ')}); add it to services or remove it here`);
    });
    // After the ports check, which reports inside the rule too.
    if (rule.action === 'permit' && report.clean(path)) {
      (rule.to ?? []).forEach((text, i) => warnAboutDestination(parseNetwork4(text as string), single(at, `${path}.to`, i), report, wellKnown));
    }
  });
}

/** The field of item `index` of a one-or-many list: the list's own when one value was written. */
function single(at: (path: string) => Field | undefined, path: string, index: number): Field {
  return at(`${path}[${index}]`) ?? (at(path) as Field);
}

function warnAboutDestination(network: Network4, field: Field, report: Report, wellKnown: boolean): void {
  if (network.length === 0) {
    report.warn(field, 'permits every IPv4 destination: faithd6 is then a relay into your whole IPv4 network');
  }
  if (!wellKnown) return;
  const overlapped = NON_GLOBAL_IPV4.filter(({ network: range }) => network4Within(network, range) || network4Within(range, network)).map(
    ({ network: range, name }) => `${range.text} (${name})`,
  );
  if (overlapped.length === 0) return;
  const shown = overlapped.length > 3 ? `${overlapped.slice(0, 3).join(', ')} and ${overlapped.length - 3} more` : overlapped.join(', ');
  report.warn(
    field,
    `${network.text} overlaps non-global IPv4 space: ${shown}; RFC 6052 §3.1 forbids embedding ` +
      `non-global addresses in the well-known prefix ${WELL_KNOWN_PREFIX}: use a network-specific prefix for them`,
  );
}

/** The value as the file wrote it, for messages (the walk keeps only the canonical text). */
function sourceText(field: Field, canonical: string): string {
  const node = field.node as { value?: unknown } | null;
  return typeof node?.value === 'string' ? node.value : canonical;
}

/**
 * Translation prefixes accepted so far, each found again in a few map lookups: comparing a new
 * prefix with every earlier one is quadratic, and a hostile file can hold thousands. Accepted
 * prefixes never overlap, so at most one contains a new prefix (and then none lies inside it);
 * otherwise the first one inside it is named, as a search of the list in order would.
 */
class AcceptedPrefixes<T> {
  readonly entries: T[] = [];
  /** Each accepted prefix under `length:bits`. */
  private readonly exact = new Map<string, T>();
  /** The first accepted prefix under each shorter (or equal) RFC 6052 prefix that contains it. */
  private readonly within = new Map<string, T>();

  overlapping(network: Network6): T | undefined {
    for (const length of RFC6052_LENGTHS) {
      if (length > network.length) break;
      const container = this.exact.get(bitsKey(network.base, length));
      if (container !== undefined) return container;
    }
    return this.within.get(bitsKey(network.base, network.length));
  }

  add(network: Network6, entry: T): void {
    this.entries.push(entry);
    this.exact.set(bitsKey(network.base, network.length), entry);
    for (const length of RFC6052_LENGTHS) {
      if (length > network.length) break;
      const key = bitsKey(network.base, length);
      if (!this.within.has(key)) this.within.set(key, entry);
    }
  }
}

/** The first `length` bits of an IPv6 address, as a map key. */
function bitsKey(address: bigint, length: number): string {
  return `${length}:${(address >> BigInt(128 - length)).toString(16)}`;
}
