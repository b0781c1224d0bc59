import { lookup } from 'node:dns/promises';
import { readdir } from 'node:fs/promises';
import { basename } from 'node:path';
import { AccessPolicy, hostIPv4Addresses, type DenyReason } from '../policy/access.js';
import {
  formatIPv4,
  formatIPv6,
  IPV4_COMPATIBLE,
  IPV4_MAPPED,
  network6Within,
  parseIPv4,
  parseIPv6,
  parseNetwork6,
  TranslationPrefix,
  translate,
  type Network6,
} from '../net/address.js';
import { loadConfig } from '../config/load.js';
import type { Config, LoadedConfig, RuleConfig } from '../config/types.js';
import { commandLine, isFaithd6Title, readSysctl, runCommand, type CommandError } from '../system/proc.js';
import { ipv6DisabledReason, localRouteState, ROUTE_PROTOCOL } from '../system/route.js';

/** The outcome of one check: a ✓ or ✗ line, what was found, and for a ✗ what to do. */
export interface Check {
  readonly ok: boolean;
  /** What was checked, in a few words: `port 5999`, `local route 2001:db8:5999::/96`. */
  readonly title: string;
  /** What was found (may span lines). */
  readonly detail: string;
  /** What to do about a failure. */
  readonly fix?: string;
  /** Remarks that are not failures, such as the config file's warnings. */
  readonly notes?: readonly string[];
}

export interface DoctorOptions {
  readonly configFile: string;
  /** DNS names whose AAAA records should be translated addresses of permitted servers. */
  readonly names?: readonly string[];
}

export interface DoctorReport {
  /** False when the config file could not be loaded (the CLI exits 78 then). */
  readonly configValid: boolean;
  readonly checks: readonly Check[];
}

/**
 * Checks this host (this network namespace) for what faithd6 needs: a valid config, IPv6,
 * the local routes, the service ports, the forwarding/accept_ra trap, and optionally that DNS
 * names lead to permitted translations. Checks that need the config are skipped when it is
 * invalid; the others still run.
 */
export async function runDoctor(options: DoctorOptions): Promise<DoctorReport> {
  const checks: Check[] = [];
  let loaded: LoadedConfig | undefined;
  try {
    loaded = await loadConfig(options.configFile);
    checks.push(configCheck(loaded));
  } catch (err) {
    checks.push({
      ok: false,
      title: `config ${options.configFile}`,
      detail: `invalid:\n${(err as Error).message}`,
      fix: 'correct the file (each problem names file:line:col and the key), or point -c at the right one',
    });
  }
  checks.push(await ipv6Check());
  if (loaded !== undefined) {
    const { config } = loaded;
    for (const prefix of config.prefixes) checks.push(await routeCheck(config, prefix));
    checks.push(...(await portChecks(config)));
  }
  checks.push(...(await forwardingChecks()));
  if (loaded !== undefined && options.names !== undefined && options.names.length > 0) {
    const reach = new Reachability(loaded.config);
    for (const name of options.names) checks.push(...(await nameChecks(loaded.config, reach, name)));
  }
  return { configValid: loaded !== undefined, checks };
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

function configCheck({ config, warnings }: LoadedConfig): Check {
  const ports = config.services.map((s) => s.port).join(', ');
  return {
    ok: true,
    title: `config ${config.file}`,
    detail:
      `valid: ${plural(config.prefixes.length, 'prefix', 'prefixes')} (${config.prefixes.join(', ')}), ` +
      `${plural(config.services.length, 'service')} (port ${ports}), ${plural(config.rules.length, 'rule')}, route: ${config.route}`,
    notes: warnings.map((w) => `warning: ${w}`),
  };
}

async function ipv6Check(): Promise<Check> {
  const reason = await ipv6DisabledReason();
  if (reason === undefined) return { ok: true, title: 'IPv6', detail: 'enabled' };
  const fix = reason.includes('kernel')
    ? 'remove ipv6.disable=1 from the kernel command line (e.g. GRUB_CMDLINE_LINUX in /etc/default/grub) and reboot'
    : 'sysctl -w net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.lo.disable_ipv6=0, and remove the setting from /etc/sysctl.conf and /etc/sysctl.d/ so that it stays so';
  return { ok: false, title: 'IPv6', detail: reason, fix };
}

async function routeCheck(config: Config, prefix: string): Promise<Check> {
  const title = `local route ${prefix}`;
  let state;
  try {
    state = await localRouteState(prefix);
  } catch (err) {
    return { ok: false, title, detail: `cannot check: ${(err as Error).message}`, fix: 'see the message; ip (iproute2) must work' };
  }
  switch (state) {
    case 'ours':
      return { ok: true, title, detail: `present (added by faithd6, proto ${ROUTE_PROTOCOL})` };
    case 'foreign':
      return { ok: true, title, detail: 'present (not added by faithd6: faithd6 leaves it alone)' };
    case 'absent':
      return {
        ok: false,
        title,
        detail: 'missing: connections to the translated addresses do not reach faithd6',
        fix:
          config.route === 'manage'
            ? `faithd6 route up -c ${config.file} (faithd6 start and run add it too when they run as root)`
            : `ip -6 route add local ${prefix} dev lo (route: external: faithd6 leaves it to you)`,
      };
  }
}

/** A process that holds a listening socket, as ss shows it. */
export interface ListenerProcess {
  readonly name: string;
  readonly pid: number;
}

/** One listening TCP socket from `ss -Hltnp`. */
export interface Listener {
  /** The local address as ss prints it: `[::]:5999`, `*:5999`, `0.0.0.0:5999`. */
  readonly text: string;
  readonly port: number;
  /**
   * `any6`: [::] with IPV6_V6ONLY, what faithd6 binds; `dual`: [::] without it (ss prints `*`),
   * taking IPv4 too; `ip6`: one IPv6 address; `ip4`: IPv4 (or IPv4-mapped), never in the way.
   */
  readonly kind: 'any6' | 'dual' | 'ip6' | 'ip4';
  /** Empty when ss could not see them (not root). */
  readonly processes: readonly ListenerProcess[];
}

/** Parses `ss -Hltn[p]` output: State Recv-Q Send-Q Local Peer [Process]. */
export function parseListeners(text: string): Listener[] {
  const listeners: Listener[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    const local = fields[3];
    if (local === undefined) continue;
    // [addr]%dev:port, addr%dev:port, *:port; the %dev part when bound to a device.
    const m = /^(\[[^\]]*\]|[^%:[\]]+)(?:%[^:]*)?:(\d+)$/.exec(local);
    if (m === null) continue;
    const address = m[1]!;
    let kind: Listener['kind'];
    if (address === '*') kind = 'dual';
    else if (!address.startsWith('[')) kind = 'ip4';
    else if (address === '[::]') kind = 'any6';
    else kind = /^\[::ffff:[\d.]+\]$/i.test(address) ? 'ip4' : 'ip6';
    const processes = [...line.matchAll(/\("((?:[^"\\]|\\.)*)",pid=(\d+),/g)].map((p) => ({ name: p[1]!, pid: Number(p[2]) }));
    listeners.push({ text: local, port: Number(m[2]), kind, processes });
  }
  return listeners;
}

/** Runs a program for a check; rejects with what to tell the operator. */
async function run(cmd: string, args: readonly string[]): Promise<string> {
  try {
    return await runCommand(cmd, args);
  } catch (err) {
    const e = err as CommandError;
    throw new Error(e.notInstalled ? `${cmd} is not installed` : e.detail, { cause: e });
  }
}

/** A listener's process as doctor names it, and whether it is faithd6. */
interface Holder {
  readonly label: string;
  readonly faithd6: boolean;
}

/**
 * Whether a process is faithd6: its process title (`faithd6: supervisor`, `faithd6: worker
 * port N`, which replaces its command line; ss shows only the first 15 characters), or, before
 * it set one, a command line that runs bin/faithd6 (`node /usr/bin/faithd6 run`).
 */
function holder(process: ListenerProcess): Holder {
  const argv = commandLine(process.pid);
  const title = argv[0] !== undefined && isFaithd6Title(argv[0]) ? argv.join(' ') : undefined;
  const faithd6 = isFaithd6Title(process.name) || title !== undefined || argv.some((arg) => basename(arg) === 'faithd6');
  // ss names a process by its main thread's name, which Node.js 24 sets to "MainThread": the
  // program it runs says more. A command line rewritten into words (a title) keeps ss's name.
  const program = argv[0] !== undefined && !/\s/.test(argv[0]) ? basename(argv[0]) : process.name;
  return { label: `${title ?? program} (pid ${process.pid})`, faithd6 };
}

function who(holders: readonly Holder[]): string {
  if (holders.length === 0) return 'a program (run doctor as root to see which)';
  return [...new Set(holders.map((h) => h.label))].join(', ');
}

async function portChecks(config: Config): Promise<Check[]> {
  let listeners: Listener[];
  try {
    listeners = parseListeners(await run('ss', ['-Hltnp']));
  } catch (err) {
    return config.services.map((s) => ({
      ok: false,
      title: `port ${s.port}`,
      detail: `cannot check: ss: ${(err as Error).message}`,
      fix: 'install iproute2 (it provides ss), then run faithd6 doctor again',
    }));
  }
  const checks: Check[] = [];
  for (const { port } of config.services) {
    const title = `port ${port}`;
    const here = listeners.filter((l) => l.port === port);
    const ipv4 = here.filter((l) => l.kind === 'ip4');
    const holders = new Map<Listener, Holder[]>();
    for (const l of here) holders.set(l, l.processes.map(holder));
    const whoHolds = (l: Listener): string => who(holders.get(l) ?? []);
    const v4note = ipv4.length === 0 ? '' : `; IPv4 listener on the same port, not in the way: ${ipv4.map((l) => `${l.text} ${whoHolds(l)}`).join(', ')}`;
    const ipv6 = here.filter((l) => l.kind !== 'ip4');
    if (ipv6.length === 0) {
      checks.push({ ok: true, title, detail: `[::]:${port} is free${v4note}` });
      continue;
    }
    const problems: Check[] = [];
    const ours: Listener[] = [];
    for (const listener of ipv6) {
      const faithd6 = (holders.get(listener) ?? []).some((h) => h.faithd6);
      if (listener.kind === 'dual') {
        problems.push({
          ok: false,
          title,
          detail:
            `${whoHolds(listener)} listens dual-stack on ${listener.text} (IPv6 and IPv4 at once, not IPv6-only): ` +
            `faithd6 cannot bind [::]:${port} while it does, and it takes the IPv4 connections of the port too${v4note}`,
          fix: `make that program listen IPv6-only (IPV6_V6ONLY) or IPv4-only, or stop it, or move it or this service to another port`,
        });
      } else if (listener.kind === 'any6' && faithd6) {
        ours.push(listener);
      } else if (listener.kind === 'any6' && listener.processes.length === 0) {
        problems.push({
          ok: false,
          title,
          detail: `something listens on ${listener.text}, and doctor cannot see whether it is faithd6${v4note}`,
          fix: 'run faithd6 doctor as root to see which program it is',
        });
      } else {
        problems.push({
          ok: false,
          title,
          detail: `${whoHolds(listener)} listens on ${listener.text}: faithd6 cannot bind [::]:${port} while it does${v4note}`,
          fix: 'stop that program, or move it or this service to another port',
        });
      }
    }
    if (problems.length > 0) checks.push(...problems);
    else
      checks.push({
        ok: true,
        title,
        detail: `faithd6 listens on ${ours.map((l) => l.text).join(', ')}, IPv6-only: ${ours.map(whoHolds).join(', ')}${v4note}`,
      });
  }
  return checks;
}

/**
 * The classic trap of a host with IPv6 forwarding on: an interface that forwards takes router
 * advertisements only when its accept_ra is 2, so with the default accept_ra=1 its SLAAC
 * addresses and the default route learned from RAs are no longer refreshed and silently
 * expire. One check per interface in the trap, or one ✓.
 */
async function forwardingChecks(): Promise<Check[]> {
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
class Reachability {
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

async function nameChecks(config: Config, reach: Reachability, name: string): Promise<Check[]> {
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
