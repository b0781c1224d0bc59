// The IPv4 server behind every system: one port, two behaviours chosen by the first byte a
// client sends, so each relay needs one port only.
//   'S' sink: read to EOF, then answer the number of bytes after the 'S' ("N\n") and FIN
//   else echo: write back every byte; FIN after the client's FIN
//
//   node dist/bench/server.js HOST PORT
import net from 'node:net';

const SINK = 0x53; // 'S'
const host = process.argv[2] ?? '198.18.0.1';
const port = Number(process.argv[3] ?? 5000);

const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
  let mode: 'unknown' | 'sink' | 'echo' = 'unknown';
  let received = 0;
  socket.on('data', (chunk: Buffer) => {
    if (mode === 'unknown') {
      mode = chunk[0] === SINK ? 'sink' : 'echo';
      if (mode === 'sink') received = -1; // the marker is not payload
    }
    if (mode === 'sink') received += chunk.length;
    else socket.write(chunk);
  });
  socket.on('end', () => {
    if (mode === 'sink') socket.end(`${received}\n`);
    else socket.end();
  });
  // Clients and relays reset connections at the end of a run: nothing to report.
  socket.on('error', () => socket.destroy());
});
server.listen({ host, port, backlog: 4096 }, () => {
  process.stdout.write(JSON.stringify({ msg: 'ready', host, port }) + '\n');
});
