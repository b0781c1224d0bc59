import { readFile } from 'node:fs/promises';
import { parseNetwork6 } from '../net/address.js';
import { FaithdError } from '../errors.js';
import { CommandError, readSysctl, runCommand } from './proc.js';

/**
 * The routing-protocol number (rtm_protocol, `ip route … proto N`) faithd6 marks its routes
 * with, so that it can tell them from an operator's and never delete a route it did not add.
 * 70 is in no iproute2 rt_protos list nor in the kernel's RTPROT_* values (which use 0–18,
 * 42, 99 and 186–192; routing daemons such as FRR take 186–198). The kernel stores the number
 * as given and matches it on delete: `ip route del … proto 70` fails for any other route.
 * An operator may name it in /etc/iproute2/rt_protos.d/faithd6.conf (`70 faithd6`).
 */
export const ROUTE_PROTOCOL = 70;

/** Who a local route belongs to: nobody (absent), faithd6 (proto 70), or someone else. */
export type LocalRouteState = 'absent' | 'ours' | 'foreign';

/** What `route up`/`route down` did with one prefix. */
export interface RouteOutcome {
  readonly prefix: string;
  readonly outcome:
    | 'added' // up: faithd6 added it now
    | 'already ours' // up: present, added by faithd6 earlier
    | 'foreign' // up or down: present, not added by faithd6, left as it is
    | 'removed' // down: faithd6's route removed
    | 'absent'; // down: there was none
}

/** Runs `ip` with arguments; resolves with stdout, rejects with a CommandError. */
function ip(args: readonly string[]): Promise<string> {
  return runCommand('ip', args);
}

/**
 * Why IPv6 cannot be used here, or undefined when it can: IPv6 left out of the kernel (no
 * /proc/sys/net/ipv6), or switched off for every interface or for lo, which the local route
 * needs. Reads this process's network namespace.
 */
export async function ipv6DisabledReason(): Promise<string | undefined> {
  const read = (name: string): Promise<string | undefined> => readSysctl(`/proc/sys/net/ipv6/conf/${name}/disable_ipv6`);
  const [all, lo] = await Promise.all([read('all'), read('lo')]);
  if (all === undefined && lo === undefined) {
    return 'the kernel runs without IPv6 (/proc/sys/net/ipv6 is missing: ipv6.disable=1 on the kernel command line?)';
  }
  const off = [all === '1' ? 'net.ipv6.conf.all.disable_ipv6 = 1' : '', lo === '1' ? 'net.ipv6.conf.lo.disable_ipv6 = 1' : ''].filter(Boolean);
  return off.length === 0 ? undefined : `IPv6 is disabled (${off.join(', ')})`;
}

async function routeError(prefix: string, verb: string, err: CommandError): Promise<FaithdError> {
  const what = `cannot ${verb} the local route for ${prefix}`;
  if (err.notInstalled) {
    return new FaithdError('ROUTE', `${what}: the ip command is not installed; faithd6 needs iproute2 (apt-get install iproute2)`, { cause: err });
  }
  if (err.stderr === '' && typeof err.cause.code === 'number') {
    // iproute2 run without root drops its capabilities with capset(2) first; where a seccomp
    // filter denies that call (systemd's SystemCallFilter=~@privileged), it exits 1 silently.
    return new FaithdError(
      'NO_PERMISSION',
      `${what}: ip exited ${err.cause.code} without a word; it lacks privileges: run it as root, and under systemd the line needs its "+" (ExecStartPre=+faithd6 route up), outside the unit's sandbox`,
      { cause: err },
    );
  }
  const detail = err.stderr || err.message;
  if (/not permitted/i.test(detail)) {
    return new FaithdError(
      'NO_PERMISSION',
      `${what}: ${detail}: changing routes needs CAP_NET_ADMIN (run it as root, or from systemd with ExecStartPre=+faithd6 route up)`,
      { cause: err },
    );
  }
  // Linux says "IPv6 is disabled on nexthop device" (older kernels: EACCES, "Permission
  // denied"); with IPv6 left out of the kernel, "Address family not supported".
  if (/ipv6 is disabled|permission denied|address family not supported/i.test(detail)) {
    const reason = (await ipv6DisabledReason()) ?? 'IPv6 seems to be disabled';
    return new FaithdError('ROUTE', `${what}: ${reason}; enable it (sysctl -w net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.lo.disable_ipv6=0) (${detail})`, {
      cause: err,
    });
  }
  return new FaithdError('ROUTE', `${what}: ${detail}`, { cause: err });
}

function hasLocalLine(out: string): boolean {
  return /^local\s/m.test(out);
}

/** Whether a local route for exactly this prefix is in the local table, and whose it is. */
export async function localRouteState(prefix: string): Promise<LocalRouteState> {
  const show = ['-6', 'route', 'show', 'table', 'local', 'exact', prefix];
  try {
    // Filtering on the number sidesteps names: rt_protos may or may not name 70.
    if (hasLocalLine(await ip([...show, 'proto', String(ROUTE_PROTOCOL)]))) return 'ours';
    return hasLocalLine(await ip(show)) ? 'foreign' : 'absent';
  } catch (err) {
    throw await routeError(prefix, 'look up', err as CommandError);
  }
}

/**
 * Makes every address of each prefix local (`ip -6 route add local PREFIX dev lo proto 70`),
 * so that a listener on [::]:port accepts connections to all of them; a route that is already
 * there, faithd6's or the operator's, is left as it is. Says what happened to each prefix. On
 * failure it removes what it added in this call, so the routes are as they were, and throws.
 */
export async function installLocalRoutes(prefixes: readonly string[]): Promise<RouteOutcome[]> {
  const outcomes: RouteOutcome[] = [];
  try {
    for (const prefix of prefixes) {
      const state = await localRouteState(prefix);
      if (state !== 'absent') {
        outcomes.push({ prefix, outcome: state === 'ours' ? 'already ours' : 'foreign' });
        continue;
      }
      try {
        await ip(['-6', 'route', 'add', 'local', prefix, 'dev', 'lo', 'table', 'local', 'proto', String(ROUTE_PROTOCOL)]);
      } catch (err) {
        throw await routeError(prefix, 'add', err as CommandError);
      }
      outcomes.push({ prefix, outcome: 'added' });
    }
  } catch (err) {
    await removeLocalRoutes(outcomes.filter((o) => o.outcome === 'added').map((o) => o.prefix)).catch(() => {});
    throw err;
  }
  return outcomes;
}

/**
 * Adds the local routes that are missing (see installLocalRoutes) and returns the prefixes it
 * added in this call: only those are the caller's to remove again.
 */
export async function addLocalRoutes(prefixes: readonly string[]): Promise<string[]> {
  return (await installLocalRoutes(prefixes)).filter((o) => o.outcome === 'added').map((o) => o.prefix);
}

/**
 * Removes faithd6's local routes (proto 70) for these prefixes. A route someone else added is
 * never deleted, only reported ('foreign'); one that is already gone is no error ('absent').
 */
export async function removeLocalRoutes(prefixes: readonly string[]): Promise<RouteOutcome[]> {
  const outcomes: RouteOutcome[] = [];
  for (const prefix of prefixes) {
    const state = await localRouteState(prefix);
    if (state !== 'ours') {
      outcomes.push({ prefix, outcome: state });
      continue;
    }
    try {
      // `proto` makes the kernel itself refuse any other route, even one that replaced ours
      // since the look-up above.
      await ip(['-6', 'route', 'del', 'local', prefix, 'dev', 'lo', 'table', 'local', 'proto', String(ROUTE_PROTOCOL)]);
      outcomes.push({ prefix, outcome: 'removed' });
    } catch (err) {
      const detail = (err as CommandError).stderr;
      if (/no such process/i.test(detail)) {
        outcomes.push({ prefix, outcome: (await localRouteState(prefix)) === 'absent' ? 'absent' : 'foreign' });
        continue;
      }
      throw await routeError(prefix, 'remove', err as CommandError);
    }
  }
  return outcomes;
}

/** RTF_LOCAL (linux/ipv6_route.h): the route's addresses are this host's own. */
const RTF_LOCAL = 0x80000000;

/**
 * Whether a local route for exactly this prefix is in any table, read from the kernel's own
 * listing (/proc/self/net/ipv6_route: this process's network namespace) rather than with
 * `ip`: what a sandboxed daemon may do. It does not tell whose route it is (the listing has no
 * protocol field), which is what localRouteState() is for.
 */
export async function localRoutePresent(prefix: string, listing = '/proc/self/net/ipv6_route'): Promise<boolean> {
  const { base, length } = parseNetwork6(prefix);
  const dest = base.toString(16).padStart(32, '0');
  const plen = length.toString(16).padStart(2, '0');
  // dest plen src srcplen nexthop metric refcnt use flags device, hex but the device.
  for (const line of (await readFile(listing, 'utf8')).split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[0] !== dest || f[1] !== plen) continue;
    if ((Number.parseInt(f[8]!, 16) & RTF_LOCAL) !== 0) return true;
  }
  return false;
}

/**
 * For a daemon that leaves the routes to its service manager: fails at start, before any
 * listener, when a prefix has no local route, since nothing would reach the listeners then.
 * A config error's exit status (78), not a crash's: restarting would not add the route.
 */
export async function requireLocalRoutes(prefixes: readonly string[]): Promise<void> {
  const missing: string[] = [];
  for (const prefix of prefixes) if (!(await localRoutePresent(prefix))) missing.push(prefix);
  if (missing.length > 0) {
    throw new FaithdError(
      'CONFIG',
      `no local route for ${missing.join(', ')}: run as --no-routes, faithd6 does not add routes itself; "faithd6 route up" (the unit's ExecStartPre=+) must add them first, and its error, if any, says why it did not`,
    );
  }
}
