import net, { isIPv6 } from 'node:net';
import { getSystemErrorName } from 'node:util';
import { SystemError } from '../errors.js';
import { READ_INTO } from './pump.js';

// Listening and accepting on libuv's TCP handle directly, as node:net's Server does inside.
// faithd6 needs two things the public API does not give: a socket bound in one process and
// accepted on in others (node:cluster's technique), and accepted sockets that read into
// buffers of faithd6's own (the `onread` option, which node:net offers for connect() only).
// Both use node:net internals that node:cluster and node:net themselves rely on:
// `net._createServerHandle`, the handle's `onconnection`, `listen` and `getsockname`, and
// `new net.Socket({ handle })`. test/listener.ts and test/relay.ts would fail if they changed.

/** libuv's UV_TCP_IPV6ONLY flag for uv_tcp_bind (uv.h; stable across libuv 1.x). */
export const UV_TCP_IPV6ONLY = 1;

/** libuv's TCP handle (node's TCPWrap), the parts used here. */
export interface TcpHandle {
  onconnection: ((status: number, client?: object) => void) | null;
  listen(backlog: number): number;
  getsockname(out: { port?: number }): number;
  setNoDelay(enable: boolean): number;
  setKeepAlive(enable: boolean, delaySeconds: number): number;
  close(callback?: () => void): void;
}

type CreateServerHandle = (address: string, port: number, addressType: number, fd: number | undefined, flags: number) => TcpHandle | number;

/**
 * Binds address:port without listening: a handle, or the errno name. libuv defers a bind's
 * EADDRINUSE to listen(), and a process listening on its own wrap of the descriptor never sees
 * that deferred error, so the bound port is checked here.
 */
export function bindHandle(address: string, port: number, flags = 0): TcpHandle | string {
  const create = (net as unknown as { _createServerHandle: CreateServerHandle })._createServerHandle;
  const handle = create(address, port, isIPv6(address) ? 6 : 4, undefined, flags);
  if (typeof handle === 'number') return getSystemErrorName(handle);
  const bound: { port?: number } = {};
  const err = handle.getsockname(bound);
  if (err !== 0 || (port !== 0 && bound.port !== port)) {
    handle.close();
    return err !== 0 ? getSystemErrorName(err) : 'EADDRINUSE';
  }
  return handle;
}

/** The port a handle is bound to, or undefined when it is not bound. */
export function boundPort(handle: TcpHandle): number | undefined {
  const out: { port?: number } = {};
  return handle.getsockname(out) === 0 ? out.port : undefined;
}

/**
 * Accepts on a bound handle. Each connection arrives as a paused socket that reads into the
 * relay's buffers (READ_INTO), half-open allowed, with TCP_NODELAY and keepalive (probes after
 * `keepAliveDelay` ms idle) set. The listener outlives accept failures: at EMFILE and ENFILE
 * libuv accepts and closes the waiting connections with a spare descriptor, so that it does not
 * spin, and reports nothing (test/listener.ts); other failures (ENOBUFS, ENOMEM, EPERM) go to
 * `onError` with their errno name.
 */
export class Listener {
  private readonly handle: TcpHandle;
  private closed = false;

  constructor(handle: TcpHandle, keepAliveDelay: number, onSocket: (socket: net.Socket) => void, onError: (code: string) => void) {
    this.handle = handle;
    // Set on the listening socket, they are inherited by every accepted one (Linux copies the
    // listener's options into the new socket): no setsockopt() per connection.
    handle.setNoDelay(true);
    handle.setKeepAlive(true, Math.round(keepAliveDelay / 1000));
    handle.onconnection = (status, client) => {
      if (status !== 0 || client === undefined) {
        onError(getSystemErrorName(status));
        return;
      }
      const options = { handle: client, allowHalfOpen: true, pauseOnCreate: true, readable: true, writable: true, onread: READ_INTO };
      onSocket(new net.Socket(options));
    };
  }

  /**
   * Starts accepting, the kernel queueing up to `backlog` connections (it caps that at
   * net.core.somaxconn); throws with the errno name as `code` when the kernel refuses.
   */
  listen(backlog: number): void {
    const err = this.handle.listen(backlog);
    if (err !== 0) throw new SystemError(getSystemErrorName(err), `listen: ${getSystemErrorName(err)}`);
  }

  /** The port accepted on. */
  get port(): number | undefined {
    return boundPort(this.handle);
  }

  /** Stops accepting (this process's descriptor only: the supervisor's stays bound). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.handle.onconnection = null;
    this.handle.close();
  }
}
