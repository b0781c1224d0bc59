import type net from 'node:net';
import { confirmEnd } from './end.js';
import { Pump, type Direction } from './pump.js';

/** How a relayed connection ended, in the operator's words; one of these is in every log line. */
/** Every way a relayed connection ends, one list for the type and for counters that start at zero. */
export const END_REASONS = [
  'fin', // both sides closed cleanly
  'reset by client',
  'reset by server',
  'idle timeout',
  'half-closed timeout',
  'refused', // the backend answered the SYN with a reset
  'unreachable', // no route, or an ICMP unreachable came back
  'connect timeout',
  'connect failed', // any other connect error
  'stopped', // reset by faithd6 itself at the end of a drain
  'protocol error', // closed by a protocol gateway (src/ftp): a line over its bound
] as const;

export type EndReason = (typeof END_REASONS)[number];

/** The ends that mean the backend was never reached. */
export const CONNECT_FAILURES: ReadonlySet<string> = new Set<EndReason>(['refused', 'unreachable', 'connect timeout', 'connect failed']);

export interface RelayTimeouts {
  /** Milliseconds to wait for the backend's SYN-ACK. */
  readonly connect: number;
  /** Milliseconds with no byte in either direction before both sides are reset. */
  readonly idle: number;
  /** Like idle, once one direction has finished. */
  readonly halfClosed: number;
}

/** Who a relayed connection is between, fixed at accept time (a closed socket forgets its peer). */
export interface RelayPeers {
  /** The IPv6 client, `[addr]:port`. */
  readonly client: string;
  /** The translated address the client dialled. */
  readonly dst: string;
  /** The IPv4 backend, `a.b.c.d:port`. */
  readonly backend: string;
}

/** What the owner of a relay hears: once when the backend answers, once when both sockets closed. */
export interface RelayHooks {
  established(relay: Relay): void;
  closed(relay: Relay, result: RelayResult): void;
}

export interface RelayResult {
  readonly end: EndReason;
  /** Bytes read from the client (and handed to the backend). */
  readonly up: number;
  /** Bytes read from the backend (and handed to the client). */
  readonly down: number;
  /** Milliseconds from accept to the close of both sockets. */
  readonly ms: number;
  /** The system error behind `end`, when there was one (ECONNRESET, EHOSTUNREACH, ...). */
  readonly error: string | undefined;
}

/**
 * The two directions of a connection whose bytes a gateway reads (src/ftp/session.ts)
 * rather than Pump's plain copy; made once the backend has answered.
 */
export type Splice = (relay: Relay) => { readonly up: Direction; readonly down: Direction };

/** What a connect error (its errno name) means for the log line. */
export function connectFailure(code: string | undefined): EndReason {
  switch (code) {
    case 'ECONNREFUSED':
      return 'refused';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EHOSTDOWN':
    case 'ENETDOWN':
      return 'unreachable';
    default:
      return 'connect failed';
  }
}

/** The relay a socket belongs to, so that one set of listener functions serves every relay. */
const RELAY = Symbol('faithd6.relay');
type Owned = net.Socket & { [RELAY]: Relay };

function relayOf(socket: net.Socket): Relay {
  return (socket as Owned)[RELAY];
}

/**
 * Splices an accepted client socket to the connection dialled to its backend: half-close in
 * both directions, a reset on either side resets the other, backpressure (a direction stops
 * reading while its write is pending: src/relay/pump.ts), and the connect / idle / half-closed
 * timeouts. The client socket comes from a Listener (src/relay/listener.ts) and the backend's
 * from dial() (src/relay/dial.ts): the client paused, so that nothing is read before the backend
 * can take it, both reading into the relay's buffers, with TCP_NODELAY and keepalive.
 *
 * An end of stream is forwarded as a FIN only once the kernel has confirmed it (src/relay/end.ts):
 * a reset that node:net reported as an end is forwarded as a reset.
 *
 * No closure is made per connection: the sockets' listeners are the module's functions below,
 * which find their relay on the socket; per chunk only Pump.read runs.
 */
export class Relay {
  readonly client: net.Socket;
  readonly backend: net.Socket;
  readonly peers: RelayPeers;
  /** When the relay began (performance.now()): the backend's connect time counts from here. */
  readonly started = performance.now();
  private readonly timeouts: RelayTimeouts;
  private readonly hooks: RelayHooks;
  private connectTimer: NodeJS.Timeout | undefined;
  private end: EndReason | undefined;
  private error: string | undefined;
  private connected = false;
  private halves = 0;
  private open = 2;
  private up: Direction | undefined;
  private down: Direction | undefined;
  private readonly preamble: Buffer | undefined;
  private readonly splice: Splice | undefined;
  /** Whether the idle timer is held off (a gateway's data connection is moving bytes). */
  private held = false;
  private lingerTimer: NodeJS.Timeout | undefined;

  /**
   * @param preamble bytes for the backend before any of the client's (a PROXY protocol header),
   *   written once it has connected (src/relay/pump.ts).
   * @param splice the directions of a gateway, instead of two Pumps (no preamble then).
   */
  constructor(client: net.Socket, backend: net.Socket, peers: RelayPeers, timeouts: RelayTimeouts, hooks: RelayHooks, preamble?: Buffer, splice?: Splice) {
    this.preamble = preamble;
    this.splice = splice;
    this.client = client;
    this.backend = backend;
    this.peers = peers;
    this.timeouts = timeouts;
    this.hooks = hooks;
    (client as Owned)[RELAY] = this;
    (backend as Owned)[RELAY] = this;
    this.connectTimer = setTimeout(connectTimedOut, timeouts.connect, this);
    backend.once('connect', backendConnected);
    backend.on('error', socketFailed);
    client.on('error', socketFailed);
    backend.once('close', socketClosed);
    client.once('close', socketClosed);
  }

  /** Ends the connection now, with a reset to both peers (the drain deadline). */
  stop(): void {
    this.abort('stopped');
  }

  /** @internal The backend answered: start both directions. */
  onConnect(): void {
    clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    this.connected = true;
    this.hooks.established(this);
    const { client, backend } = this;
    if (this.splice === undefined) {
      this.up = new Pump(client, backend, this.preamble);
      this.down = new Pump(backend, client);
    } else {
      ({ up: this.up, down: this.down } = this.splice(this));
    }
    client.once('end', socketEnded);
    backend.once('end', socketEnded);
    client.on('timeout', clientTimedOut);
    this.armIdle();
    // The backend reads from now on (it was not paused); the client was held until now.
    client.resume();
  }

  /**
   * @internal node:net says `from` ended; a FIN only once the kernel says so too. A reset that
   * came instead surfaces as `from`'s error (onError).
   */
  onEnd(from: net.Socket): void {
    if (this.end === undefined) confirmEnd(from, finConfirmed);
  }

  /**
   * @internal A FIN from `from` is forwarded as a half-close, after whatever that direction
   * still has to write.
   */
  onFin(from: net.Socket): void {
    if (this.end !== undefined) return;
    // What the direction holds back goes before the FIN: a preamble the client's first bytes
    // did not take along, a gateway's unfinished line.
    (from === this.client ? this.up : this.down)?.finish();
    (from === this.client ? this.backend : this.client).end();
    this.halves += 1;
    // The client socket's timer sees every byte either way: it reads one direction and
    // writes the other. Once one direction is done, the other must not idle for as long.
    if (this.halves === 1) this.armIdle();
  }

  private armIdle(): void {
    if (this.end !== undefined || this.client.destroyed) return;
    if (this.held) this.client.setTimeout(0);
    else this.client.setTimeout(this.halves > 0 ? Math.min(this.timeouts.halfClosed, this.timeouts.idle) : this.timeouts.idle);
  }

  /**
   * Holds the idle timer off while `held` (RFC 6384 §12: an FTP control connection stays up
   * while its data connection moves bytes); released, it counts from now.
   */
  holdIdle(held: boolean): void {
    if (this.held === held) return;
    this.held = held;
    if (this.connected) this.armIdle();
  }

  /**
   * A gateway ends the connection for `reason`: the backend is reset at once; the client gets
   * what was written to it and a FIN, and a reset should it not close within `linger` ms.
   */
  shut(reason: EndReason, error: string, linger: number): void {
    if (this.end !== undefined) return;
    this.end = reason;
    this.error = error;
    clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    reset(this.backend);
    if (this.client.destroyed) return;
    this.client.end();
    this.lingerTimer = setTimeout(reset, linger, this.client);
  }

  /** @internal The client socket's timer: no byte either way for the idle (half-closed) time. */
  onTimeout(): void {
    this.abort(this.halves > 0 ? 'half-closed timeout' : 'idle timeout');
  }

  /** @internal */
  onConnectTimeout(): void {
    this.connectTimer = undefined;
    this.abort('connect timeout');
  }

  /** @internal An error on either socket resets both. */
  onError(socket: net.Socket, err: NodeJS.ErrnoException): void {
    if (this.end !== undefined) return;
    this.error = err.code ?? err.message;
    if (socket === this.client) this.abort('reset by client');
    else this.abort(this.connected ? 'reset by server' : connectFailure(err.code));
  }

  /** Records why the connection ends and resets whatever is still open. */
  private abort(reason: EndReason): void {
    if (this.end !== undefined) return;
    this.end = reason;
    clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    reset(this.client);
    reset(this.backend);
  }

  /** @internal */
  onClose(): void {
    this.open -= 1;
    if (this.open > 0) {
      // One socket closed without an error (a clean close after both FINs, or a close the
      // other side caused): nothing to do until the second one goes.
      return;
    }
    clearTimeout(this.connectTimer);
    clearTimeout(this.lingerTimer);
    // Both sockets are closed, so no write is pending on a buffer of the pool.
    this.up?.release();
    this.down?.release();
    this.hooks.closed(this, {
      end: this.end ?? 'fin',
      up: this.client.bytesRead,
      down: this.backend.bytesRead,
      ms: Math.round(performance.now() - this.started),
      error: this.error,
    });
  }
}

// The listeners every relay's sockets share (`this` is the socket that emitted).
function backendConnected(this: net.Socket): void {
  relayOf(this).onConnect();
}
function socketEnded(this: net.Socket): void {
  relayOf(this).onEnd(this);
}
function finConfirmed(socket: net.Socket): void {
  relayOf(socket).onFin(socket);
}
function clientTimedOut(this: net.Socket): void {
  relayOf(this).onTimeout();
}
function socketFailed(this: net.Socket, err: NodeJS.ErrnoException): void {
  relayOf(this).onError(this, err);
}
function socketClosed(this: net.Socket): void {
  relayOf(this).onClose();
}
function connectTimedOut(relay: Relay): void {
  relay.onConnectTimeout();
}

/**
 * Resets a socket (RST, SO_LINGER 0) so that its peer sees ECONNRESET rather than a clean end:
 * a relay must never turn a broken stream into one that looks complete. A socket still
 * connecting, or already gone, is just destroyed.
 */
export function reset(socket: net.Socket): void {
  if (socket.destroyed) return;
  if (socket.connecting) {
    socket.destroy();
    return;
  }
  socket.resetAndDestroy();
}
