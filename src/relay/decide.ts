import type { AccessPolicy } from '../policy/access.js';
import { formatIPv4, parseIPv6, translate, type TranslationPrefix } from '../net/address.js';

/** What the accept decision looks at, compiled from the config for one service port. */
export interface Translator {
  /** The port clients dial, which the rules match on. */
  readonly port: number;
  /** The port the backend listens on. */
  readonly backendPort: number;
  readonly prefixes: readonly TranslationPrefix[];
  readonly policy: AccessPolicy;
}

/** A connection to relay: to whom, and for whom. */
export interface Permit {
  readonly relay: true;
  /** The client's address, for admission. */
  readonly source: bigint;
  /** The backend's IPv4 address, for admission. */
  readonly ipv4: number;
  readonly backendHost: string;
  readonly backendPort: number;
  /** `[addr]:port` of the IPv6 client. */
  readonly client: string;
  /** The translated address the client dialled. */
  readonly dst: string;
  /** The client's address as text and its port, and the address and port it dialled, for a PROXY protocol header. */
  readonly clientAddress: string;
  readonly clientPort: number;
  readonly dialled: bigint;
  readonly dialledPort: number;
  /** `a.b.c.d:port` of the IPv4 backend. */
  readonly backend: string;
}

/** A connection to refuse, and the fields of its log line. */
export interface Refusal {
  readonly relay: false;
  readonly end: 'not translated' | 'denied';
  readonly client: string;
  readonly fields: { readonly dst: string | undefined; readonly backend?: string; readonly reason?: string; readonly rule?: number | undefined };
}

export type Decision = Permit | Refusal;

function bracket(address: string | undefined, port: number | undefined): string {
  return `[${address ?? '?'}]:${port ?? '?'}`;
}

/**
 * The accept decision, from the addresses of an accepted socket alone: the address dialled must
 * lie in a translation prefix (the listener on [::]:port also gets this host's ordinary
 * addresses, which are not translations), and the rules must permit the client to reach the
 * IPv4 address embedded in it. A pure function: no socket, no clock, no state. The native data
 * plane hands over both addresses parsed already (`local`, `source`); otherwise their text is.
 */
export function decide(
  translator: Translator,
  dialled: string | undefined,
  remote: string | undefined,
  remotePort: number | undefined,
  dialledPort: number = translator.port,
  local: bigint | undefined = dialled === undefined ? undefined : parseIPv6(dialled),
  source: bigint | undefined = remote === undefined ? undefined : parseIPv6(remote),
): Decision {
  const client = bracket(remote, remotePort);
  const translation = local === undefined ? undefined : translate(translator.prefixes, local);
  if (translation === undefined) return { relay: false, end: 'not translated', client, fields: { dst: dialled } };
  const backendHost = formatIPv4(translation.ipv4);
  const backend = `${backendHost}:${translator.backendPort}`;
  const verdict = source === undefined ? undefined : translator.policy.check(source, translation.ipv4, translator.port);
  if (source === undefined || verdict === undefined || !verdict.permit) {
    const reason = verdict?.reason ?? 'unparsable source address';
    return { relay: false, end: 'denied', client, fields: { dst: dialled, backend, reason, rule: verdict?.rule } };
  }
  return {
    relay: true,
    source,
    ipv4: translation.ipv4,
    backendHost,
    backendPort: translator.backendPort,
    client,
    dst: dialled as string,
    backend,
    clientAddress: remote as string,
    clientPort: remotePort ?? 0,
    dialled: local as bigint,
    dialledPort,
  };
}
