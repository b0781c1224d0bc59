import type net from 'node:net';
import { formatIPv4, parseIPv4, parseIPv6 } from '../net/address.js';
import { dial, KEEPALIVE_DELAY } from '../relay/dial.js';
import { bindHandle, Listener, UV_TCP_IPV6ONLY, type TcpHandle } from '../relay/listener.js';
import { attach, type Direction } from '../relay/pump.js';
import { reset, type Relay, type RelayPeers, type RelayResult, type Splice } from '../relay/relay.js';
import { ipv6NonlocalBind } from '../system/proc.js';
import { FtpControl, ProtocolError, type ActiveListener, type ControlPeers } from './control.js';
import { LineBuffer, OVERLONG } from './lines.js';
import type { HostPort4 } from './syntax.js';

// One FTP control connection through the gateway, and the data connections it sets up: the
// sockets side of the interpreter in control.ts.

/** The longest command line (vsftpd's own bound is 4 KiB). */
export const MAX_COMMAND_LINE = 4096;
/** The longest reply line; a multi-line reply may have any number of them (they pass as they come). */
export const MAX_REPLY_LINE = 8192;
/** Commands sent to the server and not yet answered; past this the client is not read. */
export const MAX_OUTSTANDING = 64;
/** Data listeners one control connection may have waiting; a new one closes the oldest. */
export const MAX_DATA_LISTENERS = 2;
/** How long a data listener waits for its one connection. */
export const DATA_LISTEN_TIMEOUT = 30_000;
/** The listen backlog of a data connection's listener: one connection is expected, a few may try. */
const DATA_BACKLOG = 8;
/** After a protocol error, how long the client may take to read the gateway's last reply and close. */
const LINGER = 2_000;

/** The log fields of a closed connection, as the worker writes them. */
export type LogFields = Record<string, unknown>;

/** What a session needs of the worker it runs in. */
export interface SessionHost {
  /**
   * Admits a data connection before it is listened for, as the worker admits any connection:
   * the rules (for the client and the translated address it dialled) and the limits, counted
   * toward the client's source. A ticket, held by the listener and then by the data relay, or
   * why not (counted and logged): the client gets that as a 425.
   */
  reserve(dialled: string, client: string, clientPort: number): object | string;
  /** Gives back a ticket whose data connection never came. */
  release(ticket: object): void;
  /**
   * The rules as they are when the data connection arrives (a reload may have changed them
   * since its listener opened): false when `socket` was refused (reset, counted and logged).
   */
  recheck(socket: net.Socket, dialled: string, client: string, clientPort: number): boolean;
  /**
   * Relays a data connection (counted, drained and stopped with the worker's others) and calls
   * `closed` with its log fields once it is over. `reversed`: `accepted` is the server's side.
   */
  relayData(
    accepted: net.Socket,
    dialled: net.Socket,
    peers: RelayPeers,
    ticket: object,
    reversed: boolean,
    closed: (fields: LogFields, result: RelayResult) => void,
  ): void;
  /** The address connections to the backend come from (null: the kernel's choice). */
  source(): string | null;
  /** A line for the log, rate-limited when a client could cause many. */
  note(fields: LogFields, msg: string): void;
  /** A line for the log that a client cannot repeat at will. */
  info(fields: LogFields, msg: string): void;
  debug(fields: LogFields, msg: string): void;
}

/** A one-shot listener for a data connection, with its timeout. */
class DataListener {
  private readonly listener: Listener;
  private readonly timer: NodeJS.Timeout;
  private readonly onClose: (l: DataListener) => void;
  /** The data connection's admission, until taken() hands it on; released if none comes. */
  private ticket: object | undefined;
  private readonly release: (ticket: object) => void;
  private closed = false;

  /** Listens on a bound handle; throws with the errno name as `code` when the kernel refuses. */
  constructor(
    handle: TcpHandle,
    ticket: object,
    release: (ticket: object) => void,
    onConnection: (l: DataListener, socket: net.Socket) => void,
    onClose: (l: DataListener) => void,
  ) {
    this.ticket = ticket;
    this.release = release;
    this.onClose = onClose;
    this.listener = new Listener(
      handle,
      KEEPALIVE_DELAY,
      (socket) => onConnection(this, socket),
      () => {},
    );
    try {
      // A data connection's listener waits for one connection.
      this.listener.listen(DATA_BACKLOG);
    } catch (err) {
      this.listener.close();
      throw err;
    }
    this.timer = setTimeout(() => this.close(), DATA_LISTEN_TIMEOUT);
  }

  get port(): number {
    return this.listener.port ?? 0;
  }

  /** Its one connection came: the listener closes, and the ticket is the connection's. */
  taken(): object {
    const ticket = this.ticket as object;
    this.ticket = undefined;
    this.close();
    return ticket;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    this.listener.close();
    if (this.ticket !== undefined) this.release(this.ticket);
    this.ticket = undefined;
    this.onClose(this);
  }
}

type Side = 'client' | 'server';

/** A control connection's direction: its reads go to the session's interpreter. */
class ControlDirection implements Direction {
  readonly own = undefined;
  private readonly session: FtpSession;
  private readonly side: Side;

  constructor(session: FtpSession, side: Side) {
    this.session = session;
    this.side = side;
  }

  read(nread: number, buffer: Uint8Array): boolean {
    return this.session.read(this.side, buffer.subarray(0, nread));
  }

  finish(): void {
    this.session.finish(this.side);
  }

  release(): void {}
}

export interface SessionPeers {
  /** The client's address and port and the translated address it dialled, as text. */
  readonly clientAddress: string;
  readonly clientPort: number;
  readonly dst: string;
  /** The backend's IPv4 address, as text. */
  readonly backendHost: string;
  /** `[addr]:port` of the control connection's client, for the data connections' log lines. */
  readonly client: string;
}

/**
 * An FTP session: the control connection's relay reads through the interpreter, and data
 * listeners and data relays come and go as it says. Its control connection's log line waits for
 * the last data connection, and gives their count and bytes.
 */
export class FtpSession {
  private readonly host: SessionHost;
  private readonly peers: SessionPeers;
  /** The same addresses as numbers, which data connections are checked against. */
  private readonly addresses: ControlPeers;
  private readonly control: FtpControl;
  private relay: Relay | undefined;
  private readonly lines: Record<Side, LineBuffer> = {
    client: new LineBuffer(MAX_COMMAND_LINE),
    server: new LineBuffer(MAX_REPLY_LINE),
  };
  /** A side whose reads are stopped until the session resumes them. */
  private readonly paused: Record<Side, boolean> = { client: false, server: false };
  /** After an accepted AUTH: everything passes untouched. */
  private opaque = false;
  /** The control connection is being shut, or has closed. */
  private over = false;
  private readonly listeners: DataListener[] = [];
  private dataOpen = 0;
  private readonly data = { connections: 0, up: 0, down: 0 };
  /** The control connection's close, waiting for its data connections. */
  private controlClosed: (() => void) | undefined;

  constructor(host: SessionHost, peers: SessionPeers, controlPeers: ControlPeers) {
    this.host = host;
    this.peers = peers;
    this.addresses = controlPeers;
    this.control = new FtpControl(controlPeers, {
      toServer: (bytes) => this.write(this.relay?.backend, bytes),
      toClient: (bytes) => this.write(this.relay?.client, bytes),
      passive: (server) => this.passive(server),
      active: (port) => this.active(port),
      opaque: () => {
        this.opaque = true;
        this.host.info({ client: this.peers.client, dst: this.peers.dst }, 'ftp control connection encrypted (AUTH accepted): passed through untranslated');
      },
      note: (event, fields) => this.host.note({ client: this.peers.client, dst: this.peers.dst, ...fields }, `ftp: ${event}`),
    });
  }

  /** The relay's directions: given to the control connection's Relay. */
  readonly splice: Splice = (relay) => {
    this.relay = relay;
    const up = new ControlDirection(this, 'client');
    const down = new ControlDirection(this, 'server');
    attach(relay.client, up);
    attach(relay.backend, down);
    return { up, down };
  };

  /** @internal A read on one side of the control connection; false stops that side's reads. */
  read(side: Side, bytes: Uint8Array): boolean {
    if (this.over) return false;
    if (this.opaque) {
      this.write(side === 'client' ? this.relay?.backend : this.relay?.client, Buffer.from(bytes));
    } else {
      this.lines[side].push(bytes);
      this.parse(side, false);
    }
    return this.mayRead(side);
  }

  /** @internal One side sent its FIN: what it sent is passed on before the FIN is. */
  finish(side: Side): void {
    if (this.over || this.opaque) return;
    this.parse(side, true);
    const rest = this.lines[side].take();
    if (rest.length > 0) this.write(side === 'client' ? this.relay?.backend : this.relay?.client, rest);
  }

  /** Feeds whole lines to the interpreter while it may take them. */
  private parse(side: Side, ending: boolean): void {
    const lines = this.lines[side];
    try {
      while (!this.over && !this.opaque) {
        if (side === 'client' && (this.control.holding || (!ending && this.control.outstanding >= MAX_OUTSTANDING))) return;
        const line = lines.next();
        if (line === undefined) return;
        if (line === OVERLONG) {
          if (side === 'client') this.fail('500 Command line too long.\r\n', `a command line over ${MAX_COMMAND_LINE} bytes`);
          else this.fail('421 The server sent a line too long; closing the control connection.\r\n', `a reply line over ${MAX_REPLY_LINE} bytes`);
          return;
        }
        if (side === 'client') this.control.fromClient(line);
        else this.control.fromServer(line);
      }
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.fail('421 The server broke the FTP protocol; closing the control connection.\r\n', err.message);
      return;
    }
    if (this.opaque) {
      // Whatever followed the accepted AUTH, on either side, is already the encrypted stream.
      const toServer = this.lines.client.take();
      const toClient = this.lines.server.take();
      if (toServer.length > 0) this.write(this.relay?.backend, toServer);
      if (toClient.length > 0) this.write(this.relay?.client, toClient);
    }
  }

  private blocked(side: Side): boolean {
    const relay = this.relay;
    if (this.over || relay === undefined) return true;
    if (relay.client.writableLength > 0 || relay.backend.writableLength > 0) return true;
    return side === 'client' && !this.opaque && (this.control.holding || this.control.outstanding >= MAX_OUTSTANDING);
  }

  private mayRead(side: Side): boolean {
    if (!this.blocked(side)) return true;
    this.paused[side] = true;
    return false;
  }

  /** Resumes a side whose reason to wait has gone (a write done, a reply that freed the queue). */
  private readonly wake = (): void => {
    for (const side of ['server', 'client'] as const) {
      if (!this.paused[side] || this.over) continue;
      // Lines held while the side waited may go now (after a reply, or the AUTH's answer).
      if (!this.opaque) this.parse(side, false);
      if (this.blocked(side)) continue;
      this.paused[side] = false;
      const socket = side === 'client' ? this.relay?.client : this.relay?.backend;
      if (socket !== undefined && !socket.destroyed) socket.resume();
    }
  };

  private write(socket: net.Socket | undefined, bytes: Uint8Array | string): void {
    if (socket === undefined || socket.destroyed || socket.writableEnded) return;
    socket.write(bytes, this.wake);
    // A reply read from the server may have freed a place in the queue the client waits for.
    if (this.paused.client && socket === this.relay?.client) queueMicrotask(this.wake);
  }

  /** Writes `reply` to the client and closes the control connection. */
  private fail(reply: string, why: string): void {
    this.write(this.relay?.client, reply);
    this.over = true;
    this.closeListeners();
    this.host.note({ client: this.peers.client, dst: this.peers.dst, reason: why }, 'ftp control connection closed by the gateway');
    this.relay?.shut('protocol error', why, LINGER);
  }

  private closeListeners(): void {
    for (const listener of [...this.listeners]) listener.close();
  }

  private readonly forget = (listener: DataListener): void => {
    const i = this.listeners.indexOf(listener);
    if (i >= 0) this.listeners.splice(i, 1);
  };

  /**
   * Listens on `address`, one-shot, for a data connection to `port` of the client's (the
   * port it dials for a passive one): the listener, or why there is none.
   */
  private listen(address: string, flags: number, port: number, onConnection: (l: DataListener, socket: net.Socket) => void): DataListener | string {
    if (this.over) return 'the control connection is closing';
    // At the bound the oldest goes first, so that its place is free for the new one.
    while (this.listeners.length >= MAX_DATA_LISTENERS) this.listeners[0]?.close();
    const ticket = this.host.reserve(this.peers.dst, this.peers.clientAddress, port);
    if (typeof ticket === 'string') return ticket;
    const handle = bindHandle(address, 0, flags);
    let listener: DataListener | string;
    if (typeof handle === 'string') {
      listener = `no port to listen on (${handle})`;
    } else {
      try {
        listener = new DataListener(handle, ticket, (held) => this.host.release(held), onConnection, this.forget);
      } catch (err) {
        listener = `no port to listen on (${(err as NodeJS.ErrnoException).code})`;
      }
    }
    if (typeof listener === 'string') this.host.release(ticket);
    else this.listeners.push(listener);
    return listener;
  }

  /** Listens on [::] for the client's passive-mode data connection to `server`. */
  private passive(server: HostPort4): number | string {
    // Its port is not known before it connects: admitted (and, if refused, logged) under the control connection's.
    const listener = this.listen('::', UV_TCP_IPV6ONLY, this.peers.clientPort, (l, socket) => this.passiveConnection(l, socket, server));
    return typeof listener === 'string' ? listener : listener.port;
  }

  private passiveConnection(listener: DataListener, socket: net.Socket, server: HostPort4): void {
    const { remoteAddress, remotePort, localAddress } = socket;
    const from = remoteAddress === undefined ? undefined : parseIPv6(remoteAddress);
    const to = localAddress === undefined ? undefined : parseIPv6(localAddress);
    if (from !== this.addresses.client || to !== this.addresses.dialled) {
      // Another client, or this one at another address: refused, and the listener still waits.
      this.refused(socket, `[${remoteAddress}]:${remotePort}`, 'not from the control connection’s client');
      return;
    }
    const ticket = listener.taken();
    if (!this.host.recheck(socket, this.peers.dst, this.peers.clientAddress, remotePort ?? 0)) {
      this.host.release(ticket);
      return;
    }
    const backendHost = formatIPv4(server.ipv4);
    const toServer = dial(backendHost, server.port, this.host.source());
    const peers = { client: `[${remoteAddress}]:${remotePort}`, dst: this.peers.dst, backend: `${backendHost}:${server.port}` };
    this.opened();
    this.host.relayData(socket, toServer, peers, ticket, false, this.dataClosed('passive'));
  }

  /** Listens on the IPv4 side for the server's active-mode data connection to the client's `clientPort`. */
  private active(clientPort: number): ActiveListener | string {
    const local = this.relay?.backend.localAddress;
    if (local === undefined) return 'the control connection is closing';
    const listener = this.listen(local, 0, clientPort, (l, socket) => this.activeConnection(l, socket, clientPort));
    if (typeof listener === 'string') return listener;
    return { ipv4: parseIPv4(local) ?? 0, port: listener.port, cancel: () => listener.close() };
  }

  private activeConnection(listener: DataListener, socket: net.Socket, clientPort: number): void {
    if (socket.remoteAddress !== this.peers.backendHost) {
      this.refused(socket, `${socket.remoteAddress}:${socket.remotePort}`, 'not from the backend');
      return;
    }
    const ticket = listener.taken();
    if (!this.host.recheck(socket, this.peers.dst, this.peers.clientAddress, clientPort)) {
      this.host.release(ticket);
      return;
    }
    // From the translated address the client dialled, where the host lets a socket bind an
    // address it has only by a local route (net.ipv6.ip_nonlocal_bind); else from its own.
    const from = ipv6NonlocalBind() ? this.peers.dst : null;
    const toClient = dial(this.peers.clientAddress, clientPort, from, 6);
    const peers = { client: `[${this.peers.clientAddress}]:${clientPort}`, dst: this.peers.dst, backend: `${socket.remoteAddress}:${socket.remotePort}` };
    this.opened();
    this.host.relayData(socket, toClient, peers, ticket, true, this.dataClosed('active'));
  }

  /** A connection to a data listener from the wrong peer: reset; the listener waits on. */
  private refused(socket: net.Socket, from: string, why: string): void {
    this.host.note({ client: this.peers.client, from }, `ftp: data connection refused (${why})`);
    reset(socket);
  }

  private opened(): void {
    this.dataOpen += 1;
    this.data.connections += 1;
    this.relay?.holdIdle(true);
  }

  private dataClosed(mode: 'passive' | 'active'): (fields: LogFields, result: RelayResult) => void {
    return (fields, result) => {
      this.dataOpen -= 1;
      this.data.up += result.up;
      this.data.down += result.down;
      const line = { ...fields, mode, control: this.peers.client };
      if (result.end === 'fin') this.host.debug(line, 'ftp data closed');
      else this.host.info(line, 'ftp data closed');
      if (this.dataOpen > 0) return;
      this.relay?.holdIdle(false);
      this.controlClosed?.();
    };
  }

  /**
   * The control connection closed: no new data connection; `log` writes its line once the last
   * data connection has closed too, with their count and bytes.
   */
  closed(log: (fields: LogFields) => void, fields: LogFields): void {
    this.over = true;
    this.closeListeners();
    const write = (): void => {
      this.controlClosed = undefined;
      log({ ...fields, data: { ...this.data } });
    };
    if (this.dataOpen === 0) write();
    else this.controlClosed = write;
  }
}
