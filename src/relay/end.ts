import type net from 'node:net';
import { SystemError } from '../errors.js';

// How a relayed socket really ended: a FIN, or a reset that node:net reported as a FIN.
//
// libuv (src/unix/stream.c, uv__stream_io) reports end of stream without reading again when
// epoll says EPOLLHUP and the read it just made did not fill the buffer: it takes the short
// read to mean "nothing more to read", and the hang-up to mean the peer is gone. On Linux an
// RST that arrives with (or just after) the last bytes makes the socket readable, in error and
// hung up at once; the read returns those bytes, and the error (ECONNRESET), which only the next
// read would return, is never asked for. strace of a Node client whose peer writes 1000 bytes
// and resets shows `epoll_pwait … EPOLLIN|EPOLLERR|EPOLLHUP`, `read(fd, …, 65536) = 1000`, then
// `close(fd)` and an 'end' event; in about half the runs. Forwarded as a FIN, that reset would
// make a cut stream look complete at the far side.
//
// So an end of stream is not believed until the kernel confirms it: one more read on the same
// socket, which returns 0 after a FIN and the pending error after a reset. libuv keeps the
// handle readable after its EOF, and node:net has already emitted 'end', so a second EOF is
// ignored by node:net and an error destroys the socket with it, as any read error does. The
// handle must outlive the 'end' event for that: a socket whose writing side has finished is
// destroyed by the stream machinery right after 'end' (autoDestroy), so that is held off until
// the answer is in.

/** libuv's TCP handle as node:net holds it, the parts used here. */
interface ReadHandle {
  onread: (buffer: ArrayBuffer | undefined) => unknown;
  reading: boolean;
  readStart(): number;
}

/**
 * Reads `socket` once more after its 'end' event and calls `fin(socket)` when that read, too,
 * says end of stream. When it says reset (or any error), node:net destroys the socket with that
 * error instead, and `fin` is never called: the socket's 'error' listener sees it. Costs one
 * turn of the event loop and one read(2) per end of stream.
 */
export function confirmEnd(socket: net.Socket, fin: (socket: net.Socket) => void): void {
  const internal = socket as unknown as { _handle: ReadHandle | null; _readableState: { autoDestroy: boolean } };
  const handle = internal._handle;
  if (handle === null || socket.destroyed) return;
  // Called from the 'end' listener: node:net checks autoDestroy just after the listeners ran.
  internal._readableState.autoDestroy = false;
  const onread = handle.onread;
  handle.onread = function (this: ReadHandle, buffer) {
    const before = socket.bytesRead;
    const result = onread.call(this, buffer);
    // Bytes after an end of stream cannot come (none follow a FIN); should they, they were
    // relayed like any others, and the end is still to be read.
    if (socket.bytesRead !== before) return result;
    handle.onread = onread;
    if (socket.destroyed) return result;
    // The end is real. From here the stream machinery destroys the socket as it would have:
    // now if its writing side is done, else once it is.
    internal._readableState.autoDestroy = true;
    if (socket.writableFinished) socket.destroy();
    fin(socket);
    return result;
  };
  handle.reading = true;
  const err = handle.readStart();
  // libuv refuses only a handle that is closing or was never readable, and neither has just
  // emitted 'end'; should it, the stream is cut rather than trusted.
  /* c8 ignore next 4 -- unreachable through node:net, see above */
  if (err !== 0) {
    handle.onread = onread;
    socket.destroy(new SystemError('ERR_READ_AFTER_END', `read after end: ${err}`));
  }
}
