import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import t from 'tap';
import { dial } from '../../src/relay/dial.js';
import { MAX_LENT, OWN_SIZE, pool } from '../../src/relay/pump.js';
import { Relay } from '../../src/relay/relay.js';
import { accept, backend, bothWays, connect, drain, echoPieces, relayTo, sha, TIMEOUTS } from '../fixtures/relay-rig.js';

// The relay's own read buffers (src/relay/pump.ts): bulk data through own buffers, small reads
// through the shared one, at most one chunk in flight per direction, and every lent buffer
// back in the pool once its connection closed.

/** Whether `check` came to hold within `ms`, polling. */
async function until(check: () => boolean, ms = 5000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return true;
}

t.test('64 MiB each way at once arrive whole, and the own buffers go back to the pool', async (t) => {
  await bothWays(t, 64 << 20, (port) => relayTo(t, port));
  t.equal(pool.inUse, 0, 'no own buffer is still lent');
});

t.test('many connections sharing the read buffer never see each other’s bytes', async (t) => {
  // Small writes, so that reads stay below BULK_READ and go through the shared buffer.
  const port = await backend(t, (socket) => socket.pipe(socket));
  const rig = await relayTo(t, port);
  t.equal(await echoPieces(rig.port, 100, 40), 100, 'every echo is its own payload, whole');
  t.ok(await until(() => pool.inUse === 0), 'every own buffer is given back once the relays closed');
});

t.test('bulk streams and small exchanges at once: each gets its own bytes', async (t) => {
  // Own buffers and the shared one in use side by side: a socket reading into another's
  // buffer would show here as a corrupted stream.
  const bulk = randomBytes(16 << 20);
  const port = await backend(t, (socket) => {
    socket.once('data', (first: Buffer) => {
      if (first[0] === 0x42)
        socket.end(bulk); // 'B': send the bulk payload
      else {
        socket.write(first);
        socket.pipe(socket);
      }
    });
  });
  const rig = await relayTo(t, port);
  const bulks = Array.from({ length: 3 }, async () => {
    const client = connect(rig.port);
    const got = drain(client);
    client.end('B');
    const { data, end } = await got;
    return end === 'eof' && sha(data) === sha(bulk);
  });
  const small = Array.from({ length: 40 }, async () => {
    const payload = randomBytes(20 * 500);
    payload[0] = 0x53; // not 'B'
    const client = connect(rig.port);
    const got = drain(client);
    await once(client, 'connect');
    for (let i = 0; i < 20; i++) {
      client.write(payload.subarray(i * 500, (i + 1) * 500));
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    client.end();
    const { data, end } = await got;
    return end === 'eof' && data.equals(payload);
  });
  t.equal((await Promise.all(bulks)).filter(Boolean).length, 3, 'every bulk stream intact');
  t.equal((await Promise.all(small)).filter(Boolean).length, 40, 'every small exchange echoed intact');
  t.ok(await until(() => pool.inUse === 0), 'the own buffers went back');
});

t.test('a small chunk stuck behind a full client is not overwritten by other connections', async (t) => {
  // A's server sends small pieces (each read goes through the shared buffer) to a client that
  // does not read, until the relay's write to it is stuck; meanwhile B's traffic reads into the
  // shared buffer. A's stuck chunk must still be A's bytes when A reads again.
  const payload = randomBytes(24 << 20);
  let stalled!: (was: boolean) => void;
  const stuck = new Promise<boolean>((resolve) => (stalled = resolve));
  const port = await backend(t, (socket) => {
    const feed = async (first: Buffer): Promise<void> => {
      if (first[0] !== 0x41) {
        socket.write(first);
        socket.pipe(socket);
        return;
      }
      for (let at = 0; at < payload.length; at += 1000) {
        if (!socket.write(payload.subarray(at, at + 1000))) {
          const drained = await Promise.race([once(socket, 'drain').then(() => true), new Promise((resolve) => setTimeout(resolve, 300, false))]);
          if (!drained) {
            stalled(true);
            await once(socket, 'drain');
          }
        } else await new Promise((resolve) => setImmediate(resolve));
      }
      stalled(false);
      socket.end();
    };
    socket.once('data', (first: Buffer) => void feed(first).catch((err: Error) => t.fail(`the backend: ${err.message}`)));
  });
  const rig = await relayTo(t, port);
  const a = connect(rig.port);
  a.pause();
  a.write('A');
  t.equal(await stuck, true, 'the relay got stuck writing to A');
  const echoes = Array.from({ length: 20 }, async () => {
    const mine = randomBytes(8000);
    mine[0] = 0x45;
    const b = connect(rig.port);
    const got = drain(b);
    b.end(mine);
    const { data } = await got;
    return data.equals(mine);
  });
  t.equal((await Promise.all(echoes)).filter(Boolean).length, 20, 'the other connections are echoed intact');
  const got = drain(a);
  a.resume();
  const { data, end } = await got;
  t.equal(end, 'eof');
  t.equal(sha(data), sha(payload), "A's stream arrives whole and unchanged");
});

t.test('a client that does not read holds at most one chunk in the relay', async (t) => {
  const payload = randomBytes(32 << 20);
  const port = await backend(t, (socket) => socket.end(payload));
  let relay: Relay | undefined;
  const relayPort = accept(t, (socket) => {
    relay = new Relay(socket, dial('127.0.0.1', port, null), { client: 'c', dst: 'd', backend: 'b' }, TIMEOUTS, {
      established: () => {},
      closed: () => {},
    });
  });
  const client = net.connect({ host: '::1', port: relayPort });
  client.pause();
  t.ok(await until(() => relay !== undefined && relay.backend.bytesRead > 0), 'the backend started sending');
  // Let the kernel buffers fill up: then the relay must have stopped reading the server
  // (no byte read for 200 ms).
  let last = -1;
  for (let now = 0; now !== last; await new Promise((resolve) => setTimeout(resolve, 200))) {
    last = now;
    now = relay?.backend.bytesRead ?? 0;
  }
  const queued = relay?.client.writableLength ?? -1;
  // Reading stopped because one write is pending, and only one.
  t.ok(queued > 0 && queued <= OWN_SIZE, `one chunk waits in the relay (${queued} bytes)`);
  t.ok((relay?.backend.bytesRead ?? 0) < payload.length, 'the server is held back, not read ahead into memory');
  const got = drain(client);
  client.resume();
  const { data, end } = await got;
  t.equal(end, 'eof');
  t.equal(sha(data), sha(payload), 'and everything arrives once the client reads');
});

t.test(`past ${MAX_LENT} bulk directions at once, the others copy through the shared buffer`, async (t) => {
  const COUNT = MAX_LENT + 6;
  const payload = randomBytes(4 << 20);
  const port = await backend(t, (socket) => socket.end(payload));
  const rig = await relayTo(t, port);
  const clients = Array.from({ length: COUNT }, () => {
    const client = net.connect({ host: '::1', port: rig.port });
    client.pause();
    return client;
  });
  t.teardown(() => clients.forEach((client) => client.destroy()));
  // Nobody reads: every direction's write stays pending on whatever buffer it read into.
  t.ok(await until(() => pool.inUse === MAX_LENT, 10_000), 'every own buffer is lent');
  // More directions than the cap want a buffer of their own: give them time to ask for more.
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.equal(pool.inUse, MAX_LENT, 'the pool lends no more than its cap');
  const results = await Promise.all(
    clients.map((client) => {
      const got = drain(client);
      client.resume();
      return got;
    }),
  );
  t.equal(results.filter(({ data, end }) => end === 'eof' && sha(data) === sha(payload)).length, COUNT, 'every stream arrives whole');
  for (let i = 0; i < COUNT; i++) await rig.next();
  t.equal(pool.inUse, 0, 'all buffers returned');
});
