// The IPv4 server behind every system: one port, three behaviours chosen by the first byte a
// client sends, so each relay needs one port only.
//   'S' sink: read to EOF, then answer the number of bytes after the 'S' ("N\n") and FIN
//   'R' source: "R<N>\n", then the server writes N bytes and FINs (server→client throughput)
//   else echo: write back every byte; FIN after the client's FIN
//
//   node dist/bench/server.js HOST PORT
import net from 'node:net';

const SINK = 0x53; // 'S'
const SOURCE = 0x52; // 'R'
const host = process.argv[2] ?? '198.18.0.1';
const port = Number(process.argv[3] ?? 5000);
const CHUNK = Buffer.alloc(256 * 1024, 0x79);

/** Writes `bytes` to `socket` with backpressure, then FIN; stops when the client goes away. */
function source(socket: net.Socket, bytes: number): void {
  let left = bytes;
  const more = (): void => {
    while (left > 0 && !socket.destroyed) {
      const n = Math.min(left, CHUNK.length);
      left -= n;
      if (!socket.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
        socket.once('drain', more);
        return;
      }
    }
    if (!socket.destroyed) socket.end();
  };
  more();
}

const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
  let mode: 'unknown' | 'sink' | 'source' | 'echo' = 'unknown';
  let received = 0;
  let header = '';
  socket.on('data', (chunk: Buffer) => {
    if (mode === 'unknown') {
      mode = chunk[0] === SINK ? 'sink' : chunk[0] === SOURCE ? 'source' : 'echo';
      if (mode === 'sink') received = -1; // the marker is not payload
    }
    if (mode === 'sink') received += chunk.length;
    else if (mode === 'echo') socket.write(chunk);
    else if (header.length < 64 && !header.includes('\n')) {
      header += chunk.toString('latin1');
      const nl = header.indexOf('\n');
      if (nl >= 0) source(socket, Number(header.slice(1, nl)) || 0);
    }
  });
  socket.on('end', () => {
    if (mode === 'sink') socket.end(`${received}\n`);
    else if (mode === 'echo' || mode === 'unknown') socket.end();
  });
  // Clients and relays reset connections at the end of a run: nothing to report.
  socket.on('error', () => socket.destroy());
});
server.listen({ host, port, backlog: 4096 }, () => {
  process.stdout.write(JSON.stringify({ msg: 'ready', host, port }) + '\n');
});
