import net from 'node:net';

// Moving bytes from one socket to the other without Node's stream machinery in the way.
//
// Node reads a socket 64 KiB at a time into a freshly allocated buffer, pushes it through a
// Readable and, with pipe(), a Writable, pausing and resuming the source whenever the
// destination's 16 KiB high-water mark is passed, which is at every chunk. A CPU profile of
// that path spends more time in that machinery and in the allocation than in the two system
// calls that do the work. Here each socket reads straight into a buffer of ours (node:net's
// `onread` option): while a direction carries bulk data it reads into a 1 MiB buffer of its
// own, lent by the process's pool, and writes that buffer on without a copy; otherwise it reads
// into one buffer the whole process shares and copies out what it read, which is little.
// Either way a direction stops reading while its write is pending, so at most one chunk per
// direction is in flight, and a full send buffer stops the reads from the other side, which is
// the backpressure TCP relies on.

/** What every socket reads into until it moves bulk data; its contents are copied out at once. */
export const SHARED_SIZE = 64 * 1024;
/** A read at least this large means bulk data: the direction gets a buffer of its own. */
export const BULK_READ = 32 * 1024;
/**
 * The buffer a direction moving bulk data reads into (one read, one write each time). On a
 * 2-core VM, 1 MiB took a quarter less CPU per GB than 256 KiB: fewer system calls, and the
 * kernel's per-call work (wake-ups, ACKs) spread over more bytes.
 */
export const OWN_SIZE = 1024 * 1024;
/** At most this many own buffers are lent at once (32 MiB): past that, the shared buffer is used. */
export const MAX_LENT = 32;
/** Returned own buffers kept for the next bulk direction (4 MiB), rather than freed and faulted in again. */
const MAX_FREE = 4;

/** The process's buffers: the shared one, and own buffers lent to directions moving bulk data. */
class BufferPool {
  readonly shared = Buffer.allocUnsafeSlow(SHARED_SIZE);
  private readonly free: Buffer[] = [];
  private lent = 0;

  /** A buffer of OWN_SIZE, or none when MAX_LENT are out already. */
  take(): Buffer | undefined {
    if (this.lent >= MAX_LENT) return undefined;
    this.lent += 1;
    return this.free.pop() ?? Buffer.allocUnsafeSlow(OWN_SIZE);
  }

  give(buffer: Buffer): void {
    this.lent -= 1;
    if (this.free.length < MAX_FREE) this.free.push(buffer);
  }

  /** @internal Own buffers lent out now: what the tests of the cap and of returns observe. */
  get inUse(): number {
    return this.lent;
  }
}

export const pool = new BufferPool();

/**
 * One direction of a relayed connection, as the sockets' reads see it: Pump below, or a
 * protocol gateway's (src/ftp/session.ts). `own` is where the socket's next read lands
 * (the shared buffer when undefined).
 */
export interface Direction {
  readonly own: Buffer | undefined;
  /** Called with each read; false stops reading until the direction resumes its socket. */
  read(nread: number, buffer: Uint8Array): boolean;
  /** The source sent its FIN: write what is held back, before the destination's FIN. */
  finish(): void;
  /** Both sockets closed: give back what was borrowed. */
  release(): void;
}

const PUMP = Symbol('faithd6.pump');
type Pumped = net.Socket & { [PUMP]?: Direction };

/** Makes `direction` the one `src`'s reads go to (src must read with `READ_INTO`). */
export function attach(src: net.Socket, direction: Direction): void {
  (src as Pumped)[PUMP] = direction;
}

/**
 * One direction of a relayed connection: what `src` reads is written to `dst`. Attaches itself
 * to `src`, which must have been created with the `READ_INTO` onread option.
 */
export class Pump implements Direction {
  private readonly src: net.Socket;
  private readonly dst: net.Socket;
  /** Where this direction reads while it moves bulk data; otherwise it reads into the shared buffer. */
  own: Buffer | undefined;
  /** Reading is stopped until the pending write is done. */
  private waiting = false;
  /** Bytes `dst` gets before any of `src`'s (a PROXY protocol header), until written. */
  private preamble: Buffer | undefined;

  constructor(src: net.Socket, dst: net.Socket, preamble?: Buffer) {
    this.src = src;
    this.dst = dst;
    attach(src, this);
    if (preamble !== undefined) {
      this.preamble = preamble;
      // In one write with src's first bytes when they are already waiting: they are read in
      // the next poll phase, before the second check phase from now; otherwise alone then,
      // for a server that speaks first and waits for the header before it does.
      setImmediate(secondCheckPhase, this);
    }
  }

  /** Writes the preamble if src's first bytes have not taken it along. */
  finish(): void {
    if (this.preamble === undefined || this.dst.destroyed || this.dst.writableEnded) return;
    this.dst.write(this.preamble);
    this.preamble = undefined;
  }

  /** Returns the own buffer to the pool; call once both sockets closed (no write pending). */
  release(): void {
    if (this.own === undefined) return;
    pool.give(this.own);
    this.own = undefined;
  }

  /** Called with each read; false stops reading until the write it started is done. */
  read(nread: number, buffer: Uint8Array): boolean {
    const { dst } = this;
    if (dst.destroyed) return false;
    if (this.preamble !== undefined) {
      dst.write(Buffer.concat([this.preamble, buffer.subarray(0, nread)]), this.written);
      this.preamble = undefined;
    } else if (buffer === this.own) {
      dst.write(this.own.subarray(0, nread), this.written);
    } else {
      // The shared buffer is overwritten by the next read of any socket: copy.
      const chunk = Buffer.allocUnsafe(nread);
      chunk.set(buffer.subarray(0, nread));
      dst.write(chunk, this.written);
    }
    const pending = dst.writableLength > 0;
    if (nread >= BULK_READ) {
      this.own ??= pool.take();
    } else if (this.own !== undefined && !pending) {
      // The bulk has passed; an own buffer still being written is given back at a later read.
      this.release();
    }
    if (pending) this.waiting = true;
    return !pending;
  }

  private readonly written = (): void => {
    if (!this.waiting || this.dst.writableLength > 0) return;
    this.waiting = false;
    if (!this.src.destroyed) this.src.resume();
  };

  /** Called for every read of a relayed socket; says where its next read lands. */
  static readFrom(socket: net.Socket, nread: number, buffer: Uint8Array): boolean {
    const pump = (socket as Pumped)[PUMP];
    // No direction yet (the backend connecting): nothing reads before there is one.
    const more = pump === undefined ? false : pump.read(nread, buffer);
    upcoming = pump?.own ?? pool.shared;
    return more;
  }
}

function secondCheckPhase(pump: Pump): void {
  setImmediate(flushPreamble, pump);
}

function flushPreamble(pump: Pump): void {
  pump.finish();
}

/**
 * Set by each read, taken by the buffer() call node:net makes right after it. Should a read
 * callback throw, buffer() is not called, but the exception ends the worker (it has no
 * uncaughtException handler), so a stale value never reaches another socket.
 */
let upcoming: Buffer = pool.shared;

/**
 * The `onread` option for every relayed socket, so one pair of functions serves all of them:
 * no closures per connection on this path. node:net calls `callback` as a method of the
 * socket, and `buffer` (for the socket's next read) as a plain function, at once after
 * `callback`, or once when the socket gets its handle (before any read: the shared buffer).
 */
export const READ_INTO: net.OnReadOpts = {
  buffer() {
    const next = upcoming;
    upcoming = pool.shared;
    return next;
  },
  callback(this: net.Socket, nread: number, buffer: Uint8Array) {
    return Pump.readFrom(this, nread, buffer);
  },
};
