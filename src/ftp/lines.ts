/** What next() says when a line has grown past the bound without its line end. */
export const OVERLONG = Symbol('overlong line');

/**
 * Cuts a byte stream into lines ending in LF (CRLF included), at most `max` bytes each. Bytes
 * are copied in as they arrive (reads land in a buffer that is reused), and a line that arrives
 * over several reads is put back together. Memory is bounded: past `max` bytes without a line
 * end the buffer says OVERLONG and keeps nothing more.
 */
export class LineBuffer {
  private readonly max: number;
  private held: Buffer = Buffer.alloc(0);
  /** Bytes of `held` already searched for a line end. */
  private scanned = 0;

  constructor(max: number) {
    this.max = max;
  }

  /** Appends what was read. */
  push(bytes: Uint8Array): void {
    this.held = this.held.length === 0 ? Buffer.from(bytes) : Buffer.concat([this.held, bytes]);
  }

  /** The next whole line (with its line end), undefined when none is complete, or OVERLONG. */
  next(): Buffer | undefined | typeof OVERLONG {
    const end = this.held.indexOf(0x0a, this.scanned);
    if (end < 0) {
      this.scanned = this.held.length;
      if (this.held.length > this.max) {
        this.held = Buffer.alloc(0);
        this.scanned = 0;
        return OVERLONG;
      }
      return undefined;
    }
    if (end + 1 > this.max) {
      this.held = Buffer.alloc(0);
      this.scanned = 0;
      return OVERLONG;
    }
    const line = this.held.subarray(0, end + 1);
    this.held = this.held.subarray(end + 1);
    this.scanned = 0;
    return line;
  }

  /** Everything held (an unfinished line), which the buffer then forgets. */
  take(): Buffer {
    const rest = this.held;
    this.held = Buffer.alloc(0);
    this.scanned = 0;
    return rest;
  }

  /** Bytes held. */
  get length(): number {
    return this.held.length;
  }
}
