/** Check: each service port is free or held by faithd6, from `ss -Hltnp`. */
import { basename } from 'node:path';
import type { Config } from '../config/types.js';
import { commandLine, isFaithd6Title } from '../system/proc.js';
import { run, type Check } from './check.js';

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

export async function portChecks(config: Config): Promise<Check[]> {
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
