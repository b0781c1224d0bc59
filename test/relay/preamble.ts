// A preamble (the PROXY protocol header) reaches the backend before any byte of the client's,
// whatever the client does and when: sends at once, sends nothing and waits for a banner (a
// server that speaks first, as SMTP does, and waits for the header before it does), or ends
// without a byte. Each is repeated, since what arrives first is a matter of timing.
import net from 'node:net';
import t, { type Test } from 'tap';
import { listen, PLANES, relayTo } from '../fixtures/relay-rig.js';

const PREAMBLE = Buffer.from('PROXY TCP6 2001:db8:c6::2 64:ff9b:1::c612:2 40000 5999\r\n', 'latin1');
const ROUNDS = 100;

/** A backend that records each connection's bytes, and answers "banner" once the preamble is whole. */
async function backend(t: Test): Promise<{ port: number; received: Promise<Buffer>[] }> {
  const received: Promise<Buffer>[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    received.push(
      new Promise((resolve) => {
        const chunks: Buffer[] = [];
        let greeted = false;
        socket.on('data', (chunk: Buffer) => {
          chunks.push(chunk);
          if (!greeted && Buffer.concat(chunks).length >= PREAMBLE.length) {
            greeted = true;
            socket.write('banner');
          }
        });
        socket.on('end', () => {
          socket.end();
          resolve(Buffer.concat(chunks));
        });
        socket.on('error', () => resolve(Buffer.concat(chunks)));
      }),
    );
  });
  const port = await listen(server, '127.0.0.1');
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  return { port, received };
}

/** One client connection through the relay; resolves with what it received once closed. */
function client(port: number, act: (socket: net.Socket) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '::1', port, allowHalfOpen: true }, () => act(socket));
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      // The server speaks first: once it has, say something and end.
      if (text === 'banner' && !socket.writableEnded) socket.end('hello');
    });
    socket.on('end', () => socket.end());
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
  });
}

const cases: [string, (socket: net.Socket) => void, string, string][] = [
  ['the client sends at once, then ends', (s) => s.end('hello'), 'hello', 'banner'],
  ['the client sends nothing until the server greets it', () => undefined, 'hello', 'banner'],
  ['the client ends without a byte', (s) => s.end(), '', 'banner'],
];

for (const [name, act, after, answer] of cases) {
  for (const plane of PLANES)
    t.test(`${plane}: ${name}: the backend gets the preamble first (${ROUNDS} times)`, async (t) => {
      const server = await backend(t);
      const rig = await relayTo(t, server.port, { preamble: PREAMBLE, plane });
      let failures = 0;
      for (let i = 0; i < ROUNDS; i++) {
        const got = await client(rig.port, act);
        const bytes = await (server.received[i] as Promise<Buffer>);
        const expected = Buffer.concat([PREAMBLE, Buffer.from(after)]);
        if (!bytes.equals(expected) || got !== answer) {
          failures += 1;
          if (failures === 1) t.fail(`round ${i}: the backend got ${JSON.stringify(bytes.toString('latin1'))}, the client ${JSON.stringify(got)}`);
        }
        await rig.next();
      }
      t.comment(`${name}: ${failures} failures in ${ROUNDS} rounds`);
      t.equal(failures, 0);
    });
}
