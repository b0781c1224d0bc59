import { formatIPv4, formatIPv6 } from '../net/address.js';
import { parse227, parseCommand, parseEprt, parseLprt, parseReplyLine, portCommand, reply227, reply228, reply229, type HostPort4 } from './syntax.js';

// The FTP gateway's interpreter (RFC 6384): it reads the control connection line by line in both
// directions and says what to write where. It owns no socket; FtpSession (session.ts) feeds it
// and carries out what it asks: the data listeners, the writes, the close.
//
// What it translates, for an IPv6 client of an IPv4-only server:
// - EPSV (and EPSV 2), PASV and LPSV go to the server as PASV. Its 227 names the server's data
//   port; the gateway listens for the client instead and answers 229 (EPSV), 227 (PASV) or 228
//   (LPSV) with its own port. A 227 naming any address but the control connection's backend is
//   an FTP bounce: 425, and nothing is dialled.
// - EPRT |2|addr|port| and LPRT (af 6) for the client's own address go to the server as a PORT
//   naming a listener of the gateway's on the IPv4 side. Another address is refused (501).
// - EPSV ALL and ALGS (RFC 6384 §11) are answered by the gateway; PORT, and EPSV or EPRT for
//   IPv4 (protocol 1), are refused: an IPv6 client has no IPv4 address the server could use.
// - AUTH that the server accepts makes the rest of the session opaque: it passes untouched.
// Every other command and reply passes byte for byte.
//
// Replies are matched to commands in order: every command forwarded expects one final reply
// (1xx replies are preliminary), the greeting counts as the first. A reply the gateway writes
// itself waits until the server has answered every command sent before it, so pipelined
// commands get their replies in order.

/** Who the control connection is between. */
export interface ControlPeers {
  /** The IPv6 client's address. */
  readonly client: bigint;
  /** The translated address it dialled. */
  readonly dialled: bigint;
  /** The IPv4 backend's address. */
  readonly backend: number;
}

/** A listener the session opened for the server's active-mode connection. */
export interface ActiveListener {
  /** The address and port the PORT command names. */
  readonly ipv4: number;
  readonly port: number;
  /** Closes it (the server refused the PORT). */
  cancel(): void;
}

/** What the interpreter asks of its session. */
export interface ControlActions {
  toServer(bytes: Uint8Array | string): void;
  toClient(bytes: Uint8Array | string): void;
  /**
   * Listens for the client's data connection, to be relayed to the server's passive data port
   * `server`: the port the client is to connect to, or why there is none.
   */
  passive(server: HostPort4): number | string;
  /** Listens for the server's data connection, to be relayed to the client's `port`. */
  active(clientPort: number): ActiveListener | string;
  /** The server accepted AUTH: the control connection is encrypted from the next byte on. */
  opaque(): void;
  /** Something the operator should hear of (a refused bounce), for the log. */
  note(event: string, fields: Record<string, string>): void;
}

type Passive = 'epsv' | 'pasv' | 'lpsv';

/** What a command sent to the server waits for; or a reply of the gateway's own, waiting its turn. */
type Entry =
  | { readonly kind: 'plain' }
  | { readonly kind: Passive }
  | { readonly kind: 'active'; readonly listener: ActiveListener }
  | { readonly kind: 'auth' }
  | { readonly kind: 'local'; readonly reply: string };

/** A reply being read, and for a passive command's 227 its lines, held until the last. */
interface Reading {
  readonly code: number;
  readonly entry: Entry | undefined;
  /** Only for a 227 to translate. */
  readonly held: Buffer[] | undefined;
  heldBytes: number;
}

/** The most a 227 reply (all its lines) may hold before the server is taken to be broken. */
export const MAX_HELD_REPLY = 8 * 1024;

const PASSIVE_VERBS: ReadonlySet<string> = new Set(['PASV', 'EPSV', 'LPSV']);
const ACTIVE_VERBS: ReadonlySet<string> = new Set(['PORT', 'EPRT', 'LPRT']);

export class FtpControl {
  private readonly peers: ControlPeers;
  private readonly act: ControlActions;
  /** Oldest first; the head, when there is one, is never a 'local' (those are written once at the head). */
  private readonly queue: Entry[] = [{ kind: 'plain' }];
  private reading: Reading | undefined;
  /** ALGS ENABLE64 / DISABLE64. */
  private enabled = true;
  /** After EPSV ALL only EPSV may set up a data connection (RFC 2428 §4). */
  private epsvAll = false;
  /** An AUTH is waiting for its reply: the client's next bytes may already be encrypted. */
  private authPending = false;

  constructor(peers: ControlPeers, act: ControlActions) {
    this.peers = peers;
    this.act = act;
  }

  /** Commands and replies of the gateway's waiting for the server. */
  get outstanding(): number {
    return this.queue.length;
  }

  /** Whether the client's lines must wait (an AUTH's answer decides whether they are commands at all). */
  get holding(): boolean {
    return this.authPending;
  }

  /** One line from the client, with its line end. */
  fromClient(line: Buffer): void {
    const { verb, arg } = parseCommand(line);
    if (!this.enabled && verb !== 'ALGS') return this.forward(line, { kind: 'plain' });
    if (this.epsvAll && (ACTIVE_VERBS.has(verb) || (PASSIVE_VERBS.has(verb) && verb !== 'EPSV'))) {
      return this.local(`503 Only EPSV may open a data connection after EPSV ALL.\r\n`);
    }
    switch (verb) {
      case 'EPSV':
        return this.epsv(arg);
      case 'PASV':
        return this.forward(line, { kind: 'pasv' });
      case 'LPSV':
        return this.forward('PASV\r\n', { kind: 'lpsv' });
      case 'EPRT':
        return this.eprt(parseEprt(arg), '522 Network protocol not supported, use (2).\r\n');
      case 'LPRT':
        return this.eprt(parseLprt(arg), '521 Supported address families are (6).\r\n');
      case 'PORT':
        return this.local('501 PORT names an IPv4 address, which an IPv6 client cannot take a connection on: use EPRT.\r\n');
      case 'ALGS':
        return this.algs(arg.toUpperCase());
      case 'AUTH':
        this.authPending = true;
        return this.forward(line, { kind: 'auth' });
      default:
        return this.forward(line, { kind: 'plain' });
    }
  }

  private epsv(arg: string): void {
    const upper = arg.toUpperCase();
    if (upper === 'ALL') {
      this.epsvAll = true;
      return this.local('200 EPSV ALL command successful.\r\n');
    }
    if (arg === '' || arg === '2') return this.forward('PASV\r\n', { kind: 'epsv' });
    if (/^\d+$/.test(arg)) return this.local('522 Network protocol not supported, use (2).\r\n');
    return this.local('501 Syntax error in EPSV parameters.\r\n');
  }

  private eprt(target: ReturnType<typeof parseEprt>, unsupported: string): void {
    if (!target.ok) return this.local(target.why === 'protocol' ? unsupported : '501 Syntax error in the data port parameters.\r\n');
    if (target.address !== this.peers.client) {
      this.act.note('active-mode address refused', { requested: formatIPv6(target.address) });
      return this.local("501 The data connection can only go to this client's own address.\r\n");
    }
    const listener = this.act.active(target.port);
    if (typeof listener === 'string') return this.local(`425 Can't open data connection: ${listener}.\r\n`);
    this.forward(portCommand(listener.ipv4, listener.port), { kind: 'active', listener });
  }

  private algs(arg: string): void {
    if (arg === 'ENABLE64') this.enabled = true;
    else if (arg === 'DISABLE64') this.enabled = false;
    else if (arg !== 'STATUS64') return this.local('501 ALGS takes STATUS64, ENABLE64 or DISABLE64.\r\n');
    this.local(`216 ${this.enabled ? 'ENABLED' : 'DISABLED'}\r\n`);
  }

  private forward(bytes: Buffer | string, entry: Entry): void {
    this.queue.push(entry);
    this.act.toServer(bytes);
  }

  /** A reply of the gateway's own, in its turn. */
  private local(reply: string): void {
    if (this.queue.length === 0) this.act.toClient(reply);
    else this.queue.push({ kind: 'local', reply });
  }

  /** One line from the server, with its line end. */
  fromServer(line: Buffer): void {
    const parsed = parseReplyLine(line);
    let reading = this.reading;
    if (reading === undefined) {
      if (parsed === undefined) {
        // Not a reply (a broken server): passed on, as a plain relay would.
        this.act.toClient(line);
        return;
      }
      const entry = this.queue[0];
      const translate = parsed.code === 227 && entry !== undefined && isPassive(entry) && this.enabled;
      reading = { code: parsed.code, entry, held: translate ? [] : undefined, heldBytes: 0 };
      this.reading = reading;
    }
    if (reading.held === undefined) {
      this.act.toClient(line);
    } else {
      reading.held.push(line);
      reading.heldBytes += line.length;
      if (reading.heldBytes > MAX_HELD_REPLY) throw new ProtocolError('the server sent a 227 reply over 8 KiB');
    }
    // A multi-line reply ends with a line that starts with its own code and a space.
    if (parsed === undefined || parsed.code !== reading.code || !parsed.last) return;
    this.reading = undefined;
    if (reading.code < 200) return; // preliminary: the final reply is still to come
    this.queue.shift();
    this.answered(reading);
    while (this.queue[0]?.kind === 'local') this.act.toClient((this.queue.shift() as { reply: string }).reply);
  }

  /** The server's final reply to the command at the head. */
  private answered(reading: Reading): void {
    const { entry, code } = reading;
    if (entry === undefined) return;
    if (entry.kind === 'active' && (code < 200 || code > 299)) entry.listener.cancel();
    if (entry.kind === 'auth') {
      this.authPending = false;
      if (code >= 200 && code < 400) this.act.opaque();
    }
    if (reading.held !== undefined) this.passiveReply(entry.kind as Passive, reading.held);
  }

  private passiveReply(kind: Passive, lines: Buffer[]): void {
    const server = parse227(Buffer.concat(lines).toString('latin1'));
    if (server === undefined) {
      // Nothing to translate: the client gets the server's words and fails as it would.
      for (const line of lines) this.act.toClient(line);
      return;
    }
    if (server.ipv4 !== this.peers.backend) {
      this.act.note('passive-mode address refused', { named: `${formatIPv4(server.ipv4)}:${server.port}` });
      this.act.toClient("425 Can't open data connection: the server named another host for it.\r\n");
      return;
    }
    const port = this.act.passive(server);
    if (typeof port === 'string') {
      this.act.toClient(`425 Can't open data connection: ${port}.\r\n`);
      return;
    }
    if (kind === 'epsv') this.act.toClient(reply229(port));
    else if (kind === 'lpsv') this.act.toClient(reply228(this.peers.dialled, port));
    else this.act.toClient(reply227(this.peers.backend, port));
  }
}

function isPassive(entry: Entry): entry is { kind: Passive } {
  return entry.kind === 'epsv' || entry.kind === 'pasv' || entry.kind === 'lpsv';
}

/** A control connection the gateway cannot go on with; the session closes it. */
export class ProtocolError extends Error {
  override name = 'ProtocolError';
}
