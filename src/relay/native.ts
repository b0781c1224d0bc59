import { createRequire } from 'node:module';
import { join } from 'node:path';
import { getSystemErrorName } from 'node:util';
import { SystemError } from '../errors.js';
import { packageRoot } from '../version.js';
import { connectFailure, type EndReason, type RelayResult, type RelayTimeouts } from './relay.js';
import type { TcpHandle } from './listener.js';

// The native data plane (native/, a Node-API addon): accepting, connecting, moving bytes,
// half-close, resets, the timers and the byte counts of a relayed connection happen in C on
// this process's own event loop; every decision stays here. The plane calls in once per
// connection, when it was accepted (the worker decides, and dials or refuses); that its backend
// answered and that both sockets are closed, it writes to a shared array and hands over once per
// turn of the loop for all connections. Its semantics are the JavaScript relay's
// (src/relay/relay.ts), and the same end-to-end tests run against both.

/** The addon's exports (native/src/binding.c). */
interface Addon {
  open(callbacks: AddonCallbacks, copy: number, window: Float64Array): void;
  listen(fd: number, backlog: number, keepAliveSeconds: number): number;
  unlisten(): void;
  dial(id: number, ipv4: number, port: number, source: number, connect: number, idle: number, halfClosed: number, preamble: Buffer | undefined): void;
  reset(id: number): void;
  stats(): NativeStats;
  pipeLimit(pairs: number): void;
  close(): void;
}

interface AddonCallbacks {
  /** The addresses as text and as the numbers the decision works on (parsed in C, not here). */
  accepted(id: number, local: string, localPort: number, remote: string, remotePort: number, localBits: bigint, remoteBits: bigint): void;
  /** Events [start, end) of the window are new: EVENT_FIELDS numbers each, as below. */
  events(start: number, end: number): void;
  acceptFailed(errno: number): void;
}

/**
 * The window of events (native/src/binding.c): per event, its kind and the connection's id,
 * then for ESTABLISHED the connect time (ms), for CLOSED the end code, the errno, the bytes up
 * and down and the duration (ms). Events beyond its size are handed over in more calls.
 */
const EVENT_FIELDS = 8;
const WINDOW_EVENTS = 512;
const ESTABLISHED = 0;

/** What the plane holds now. */
export interface NativeStats {
  /** Relayed connections open. */
  readonly conns: number;
  /** Directions holding bytes their destination has not taken yet, and how many bytes. */
  readonly heldBuffers: number;
  readonly heldBytes: number;
  /** splice(2) pipe pairs open (in use and pooled). */
  readonly pipes: number;
  /** Their capacity in all: at most 64 KiB per pipe the limit allows (a pipe is 1 MiB while half of that is free). */
  readonly pipeBytes: number;
  /** 1 MiB buffers of bulk reads (read/write): the next read's, those holding bytes (16 at most), pooled ones (2). */
  readonly bulkBuffers: number;
  /** Bytes read from clients and from backends, of the connections open now. */
  readonly up: number;
  readonly down: number;
  /** The size of one connection's C struct. */
  readonly connSize: number;
}

/** How the plane moves bulk: read(2)/write(2) through 1 MiB buffers, or splice(2) through pipes. */
export type CopyMode = 'rw' | 'splice';

/**
 * How the native plane moves bulk (from a direction's first read that fills its 64 KiB buffer;
 * smaller messages are read and written either way): read(2)/write(2) of 1 MiB at a time, as the
 * JavaScript plane does (the default: on this project's bench a single stream ran 15-20 % faster
 * than through splice, four streams level), or with FAITHD6_NATIVE_COPY=splice, splice(2)
 * through pooled pipes (the kernel moves the pages; less CPU per GB), for measuring one against
 * the other (npm run bench).
 */
export function copyMode(): CopyMode {
  return process.env.FAITHD6_NATIVE_COPY === 'splice' ? 'splice' : 'rw';
}

/**
 * The splice pipe pairs a process with `openFiles` descriptors (RLIMIT_NOFILE) lets the plane
 * keep: one per 64 descriptors, 256 at most (512 descriptors of 65,536), and none below 1,024,
 * where every descriptor goes to connections. A direction that finds none copies through the
 * buffer instead.
 */
export function pipeBudget(openFiles: number): number {
  return openFiles < 1024 ? 0 : Math.min(256, Math.floor(openFiles / 64));
}

/** The addon, or why it could not be loaded. */
export type NativeLoad = { readonly addon: Addon; readonly path: string } | { readonly addon: undefined; readonly reason: string };

let loaded: NativeLoad | undefined;

/**
 * Loads the addon once per process: the one `npm install` built in the source tree
 * (native/build/Release/), else the prebuilt binary shipped in the package
 * (native/prebuilds/), or the file FAITHD6_NATIVE_ADDON names (a build of one's own). Never
 * throws: a process without it relays on the JavaScript data plane.
 */
export function loadNative(): NativeLoad {
  if (loaded !== undefined) return loaded;
  try {
    const require = createRequire(import.meta.url);
    const gypBuild = require('node-gyp-build') as { resolve(dir: string): string };
    const path = process.env.FAITHD6_NATIVE_ADDON || gypBuild.resolve(join(packageRoot(), 'native'));
    loaded = { addon: require(path) as Addon, path };
  } catch (err) {
    loaded = { addon: undefined, reason: (err as Error).message.split('\n')[0] ?? String(err) };
  }
  return loaded;
}

/** Which data plane a worker relays on, and why not the native one when that was configured. */
export interface PlaneChoice {
  readonly dataPlane: 'native' | 'js';
  readonly fallback: string | null;
}

/**
 * The data plane for a service: the configured one, except that the FTP gateway reads its
 * control connections line by line in JavaScript, and that an addon which does not load
 * leaves the JavaScript one.
 */
export function choosePlane(configured: 'native' | 'js', protocol: 'tcp' | 'ftp'): PlaneChoice {
  if (configured === 'js') return { dataPlane: 'js', fallback: null };
  if (protocol === 'ftp') return { dataPlane: 'js', fallback: 'the FTP gateway relays in JavaScript' };
  const load = loadNative();
  return load.addon === undefined ? { dataPlane: 'js', fallback: `the native addon did not load: ${load.reason}` } : { dataPlane: 'native', fallback: null };
}

/** The plane's end codes (native/src/plane.h, enum end_code) in the operator's words. */
function endReason(code: number, errno: number): EndReason {
  switch (code) {
    case 0:
      return 'fin';
    case 1:
      return 'reset by client';
    case 2:
      return 'reset by server';
    case 3:
      return connectFailure(errnoName(errno));
    case 4:
      return 'connect timeout';
    case 5:
      return 'idle timeout';
    case 6:
      return 'half-closed timeout';
    default:
      return 'stopped';
  }
}

function errnoName(errno: number): string {
  return errno === 0 ? '' : getSystemErrorName(-errno);
}

/** How the worker has a connection accepted by the plane relayed. */
export interface NativeDial<T> {
  /** The backend's IPv4 address (a 32-bit number) and port. */
  readonly ipv4: number;
  readonly port: number;
  /** The address to connect from, or 0 for the kernel's choice. */
  readonly source: number;
  readonly timeouts: RelayTimeouts;
  /** Bytes for the backend before any of the client's (a PROXY protocol header). */
  readonly preamble: Buffer | undefined;
  /** The worker's own record of the connection, handed back at established() and closed(). */
  readonly token: T;
}

/** What the plane asks of its owner (the worker). */
export interface NativeHost<T> {
  /**
   * A connection was accepted: how to relay it, or undefined to refuse it (it is reset). The
   * addresses come as text and as numbers (parseIPv6's), the address dialled first.
   */
  accepted(local: string, localPort: number, remote: string, remotePort: number, localBits: bigint, remoteBits: bigint): NativeDial<T> | undefined;
  established(token: T, connectMs: number): void;
  closed(token: T, result: RelayResult): void;
  acceptFailed(code: string): void;
}

/**
 * One process's native data plane: a listener and its connections. The addon allows one per
 * process; close() frees it for the next. `T` is the owner's record of a connection (never
 * undefined: that marks an id with no connection).
 */
export class NativePlane<T extends object | number> {
  private readonly addon: Addon;
  private readonly host: NativeHost<T>;
  /** The owner's record of each open connection, by the plane's id (ids are small and reused). */
  private readonly tokens: (T | undefined)[] = [];
  private count = 0;
  private readonly window: Float64Array;
  private handle: TcpHandle | undefined;
  /** How it moves bytes. */
  readonly copy: CopyMode;

  /** `windowEvents`: how many events the plane hands over per call at most (tests make it small). */
  constructor(addon: Addon, host: NativeHost<T>, copy: CopyMode, windowEvents = WINDOW_EVENTS) {
    this.addon = addon;
    this.host = host;
    this.copy = copy;
    this.window = new Float64Array(windowEvents * EVENT_FIELDS);
    addon.open(
      {
        accepted: (id, local, localPort, remote, remotePort, localBits, remoteBits) =>
          this.onAccepted(id, local, localPort, remote, remotePort, localBits, remoteBits),
        events: (start, end) => this.onEvents(start, end),
        acceptFailed: (errno) => host.acceptFailed(errnoName(errno)),
      },
      copy === 'splice' ? 1 : 0,
      this.window,
    );
  }

  /** Accepts on a bound handle (received from the supervisor); throws with the errno name as `code`. */
  listen(handle: TcpHandle, backlog: number, keepAliveDelay: number): void {
    const fd = (handle as unknown as { fd: number }).fd;
    const err = this.addon.listen(fd, backlog, Math.round(keepAliveDelay / 1000));
    if (err !== 0) throw new SystemError(errnoName(err), `listen: ${errnoName(err)}`);
    this.handle = handle;
  }

  /** Stops accepting and closes this process's descriptor of the listening socket. */
  unlisten(): void {
    if (this.handle === undefined) return;
    this.addon.unlisten();
    this.handle.close();
    this.handle = undefined;
  }

  /** Resets every open connection ('stopped'): the drain deadline. */
  resetAll(): void {
    for (let id = 0; id < this.tokens.length; id++) if (this.tokens[id] !== undefined) this.addon.reset(id);
  }

  get size(): number {
    return this.count;
  }

  stats(): NativeStats {
    return this.addon.stats();
  }

  /** How many splice pipe pairs the plane may keep open (it closes pooled ones above that). */
  pipeLimit(pairs: number): void {
    this.addon.pipeLimit(pairs);
  }

  /** Resets what is open and releases the plane (tests; a worker just exits). */
  close(): void {
    this.unlisten();
    this.addon.close();
  }

  private onAccepted(id: number, local: string, localPort: number, remote: string, remotePort: number, localBits: bigint, remoteBits: bigint): void {
    const dial = this.host.accepted(local, localPort, remote, remotePort, localBits, remoteBits);
    if (dial === undefined) return;
    const { timeouts } = dial;
    this.tokens[id] = dial.token;
    this.count += 1;
    this.addon.dial(id, dial.ipv4, dial.port, dial.source, timeouts.connect, timeouts.idle, timeouts.halfClosed, dial.preamble);
  }

  private onEvents(start: number, end: number): void {
    const w = this.window;
    for (let i = start * EVENT_FIELDS; i < end * EVENT_FIELDS; i += EVENT_FIELDS) {
      const id = w[i + 1] as number;
      const token = this.tokens[id];
      if (token === undefined) continue;
      if (w[i] === ESTABLISHED) {
        this.host.established(token, w[i + 2] as number);
        continue;
      }
      this.tokens[id] = undefined;
      this.count -= 1;
      const code = w[i + 2] as number;
      const errno = w[i + 3] as number;
      const result = {
        end: endReason(code, errno),
        up: w[i + 4] as number,
        down: w[i + 5] as number,
        ms: Math.round(w[i + 6] as number),
        error: errno === 0 ? undefined : errnoName(errno),
      };
      this.host.closed(token, result);
    }
  }
}
