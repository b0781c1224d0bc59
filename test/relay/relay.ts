import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import t, { type Test } from 'tap';
import { dial } from '../../src/relay/dial.js';
import { Relay, type RelayResult } from '../../src/relay/relay.js';
import { accept, backend, connect, drain, listen, PLANES, relayTo, sha, TIMEOUTS, type Plane } from '../fixtures/relay-rig.js';

// The relay between real loopback sockets (test/fixtures/relay-rig.ts): a "translator"
// listener on ::1 relays to a backend on 127.0.0.1. Every case runs on both data planes.

/** A test run once per data plane, named after it. */
function planeTest(name: string, fn: (t: Test, plane: Plane) => Promise<void>): void {
  for (const plane of PLANES) t.test(`${plane}: ${name}`, (t) => fn(t, plane));
}

planeTest('half-close: the client finishes sending, then the server replies in full', async (t, plane) => {
  const request = randomBytes(300_000);
  const reply = randomBytes(1 << 20);
  let serverGot: Buffer | undefined;
  const port = await backend(t, (socket) => {
    void drain(socket).then(({ data }) => {
      serverGot = data;
      socket.end(reply);
    });
  });
  const rig = await relayTo(t, port, { plane });
  const client = connect(rig.port);
  const received = drain(client);
  client.end(request);
  const got = await received;
  t.equal(got.end, 'eof', 'the client sees a clean end after the reply');
  t.equal(sha(got.data), sha(reply), 'the whole reply arrives');
  t.equal(sha(serverGot as Buffer), sha(request), 'the whole request arrived before the server replied');
  const result = await rig.next();
  t.equal(result.end, 'fin');
  t.equal(rig.established, 1, 'the owner heard that the backend answered');
  t.equal(result.up, request.length, 'bytes up counted exactly');
  t.equal(result.down, reply.length, 'bytes down counted exactly');
});

planeTest('half-close the other way: the server finishes first, the client keeps sending', async (t, plane) => {
  const greeting = randomBytes(100_000);
  const upload = randomBytes(2 << 20);
  let serverGot: Promise<{ data: Buffer; end: string }> | undefined;
  const port = await backend(t, (socket) => {
    socket.end(greeting);
    serverGot = drain(socket);
  });
  const rig = await relayTo(t, port, { plane });
  const client = connect(rig.port);
  const chunks: Buffer[] = [];
  client.on('data', (c: Buffer) => chunks.push(c));
  await new Promise<void>((resolve) => client.once('end', resolve));
  t.equal(sha(Buffer.concat(chunks)), sha(greeting), 'the client got the greeting and then EOF');
  client.end(upload);
  const got = await (serverGot as Promise<{ data: Buffer; end: string }>);
  t.equal(got.end, 'eof');
  t.equal(sha(got.data), sha(upload), "the upload after the server's FIN arrives whole");
  t.equal((await rig.next()).end, 'fin');
});

planeTest('a server reset mid-stream resets the client', async (t, plane) => {
  const port = await backend(t, (socket) => {
    socket.write(randomBytes(64 * 1024), () => setTimeout(() => socket.resetAndDestroy(), 50));
  });
  const rig = await relayTo(t, port, { plane });
  const client = connect(rig.port);
  const got = await drain(client);
  t.equal(got.end, 'ECONNRESET', 'the client sees a reset, not EOF');
  const result = await rig.next();
  t.equal(result.end, 'reset by server');
  t.equal(result.error, 'ECONNRESET');
});

// libuv reports a reset that arrives with the last bytes as an end of stream (src/relay/end.ts);
// the relay must not believe it. The relay's own verdict is checked here, many times, because
// a Node client would be fooled the same way (test/netns/race.ts uses peers that are not).
planeTest('a reset in the same tick as the last bytes is a reset, every time', async (t, plane) => {
  const ROUNDS = 200;
  // One rig per size, each torn down before the next (the native plane is one per process).
  for (const size of [1, 1000, 64 * 1024 + 1])
    await t.test(`${size} B`, async (t) => {
      const chunk = randomBytes(size);
      const port = await backend(t, (socket) => {
        socket.once('data', () => {
          socket.write(chunk);
          socket.resetAndDestroy();
        });
        socket.on('error', () => {});
      });
      const rig = await relayTo(t, port, { plane });
      const ends: Record<string, number> = {};
      for (let i = 0; i < ROUNDS; i++) {
        const client = connect(rig.port);
        client.on('data', () => {});
        client.on('error', () => {});
        client.on('end', () => client.destroy());
        client.write('!');
        const { end } = await rig.next();
        ends[end] = (ends[end] ?? 0) + 1;
        client.destroy();
      }
      t.same(ends, { 'reset by server': ROUNDS }, `${size} B then a reset: ${JSON.stringify(ends)} in ${ROUNDS} rounds`);
    });
});

planeTest('a client reset mid-stream resets the server', async (t, plane) => {
  let serverSaw: Promise<{ data: Buffer; end: string }> | undefined;
  const port = await backend(t, (socket) => {
    serverSaw = drain(socket);
  });
  const rig = await relayTo(t, port, { plane });
  const client = connect(rig.port);
  client.write(randomBytes(64 * 1024), () => setTimeout(() => client.resetAndDestroy(), 100));
  const result = await rig.next();
  t.equal(result.end, 'reset by client');
  t.equal((await (serverSaw as Promise<{ data: Buffer; end: string }>)).end, 'ECONNRESET', 'the server sees a reset, not EOF');
});

planeTest('a backend that refuses makes the client reset', async (t, plane) => {
  const closed = net.createServer();
  const port = await listen(closed, '127.0.0.1');
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const rig = await relayTo(t, port, { plane });
  const started = Date.now();
  const got = await drain(connect(rig.port));
  t.equal(got.end, 'ECONNRESET', 'accepted, then reset: not a clean close');
  t.ok(Date.now() - started < 1000, 'at once');
  const result = await rig.next();
  t.equal(result.end, 'refused');
  t.equal(rig.established, 0, 'a refused backend never counts as established');
  t.equal(result.error, 'ECONNREFUSED');
});

planeTest('a backend that never answers makes the client reset at the connect timeout', async (t, plane) => {
  // A loopback listener with a backlog of one, frozen with SIGSTOP so it never accepts: once
  // its accept queue is full the kernel drops further SYNs, exactly like a blackholed host.
  const frozen = spawn(
    process.execPath,
    [
      '-e',
      `
    const s = require('node:net').createServer().listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
      console.log(s.address().port);
    });`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  t.teardown(() => {
    frozen.kill('SIGKILL');
  });
  const [line] = (await once(frozen.stdout as NodeJS.ReadableStream, 'data')) as [Buffer];
  const port = Number(line.toString());
  frozen.kill('SIGSTOP');
  const fillers: net.Socket[] = [];
  t.teardown(() => fillers.forEach((s) => s.destroy()));
  for (let i = 0; i < 4; i++) {
    const s = net.connect({ host: '127.0.0.1', port });
    s.on('error', () => {});
    fillers.push(s);
  }
  await new Promise((resolve) => setTimeout(resolve, 200));
  const rig = await relayTo(t, port, { timeouts: { ...TIMEOUTS, connect: 400 }, plane });
  const started = Date.now();
  const got = await drain(connect(rig.port));
  const elapsed = Date.now() - started;
  t.equal(got.end, 'ECONNRESET', 'the client is reset, not closed cleanly');
  t.ok(elapsed >= 350 && elapsed < 2000, `reset at the connect timeout (${elapsed} ms)`);
  t.equal((await rig.next()).end, 'connect timeout');
});

planeTest('an idle connection is reset on both sides at the idle timeout', async (t, plane) => {
  let serverSaw: Promise<{ data: Buffer; end: string }> | undefined;
  const port = await backend(t, (socket) => {
    serverSaw = drain(socket);
  });
  const rig = await relayTo(t, port, { timeouts: { ...TIMEOUTS, idle: 300 }, plane });
  const started = Date.now();
  const got = await drain(connect(rig.port));
  t.equal(got.end, 'ECONNRESET', 'client reset');
  t.equal((await (serverSaw as Promise<{ data: Buffer; end: string }>)).end, 'ECONNRESET', 'server reset');
  t.ok(Date.now() - started >= 250, 'not before the timeout');
  t.equal((await rig.next()).end, 'idle timeout');
});

planeTest('a connection left half-closed is reset at the half-closed timeout', async (t, plane) => {
  const port = await backend(t, (socket) => {
    socket.resume(); // reads the client's FIN, then stays silent
  });
  const rig = await relayTo(t, port, { timeouts: { ...TIMEOUTS, halfClosed: 300 }, plane });
  const client = connect(rig.port);
  const got = drain(client);
  client.end('bye');
  t.equal((await got).end, 'ECONNRESET');
  t.equal((await rig.next()).end, 'half-closed timeout');
});

t.test('stop() resets both sides', async (t) => {
  let relay: Relay | undefined;
  let closed!: (result: RelayResult) => void;
  const result = new Promise<RelayResult>((resolve) => (closed = resolve));
  let established!: () => void;
  const up = new Promise<void>((resolve) => (established = resolve));
  const port = await backend(t, () => {});
  const relayPort = accept(t, (socket) => {
    relay = new Relay(socket, dial('127.0.0.1', port, null), { client: 'c', dst: 'd', backend: 'b' }, TIMEOUTS, {
      established: () => established(),
      closed: (_r, r) => closed(r),
    });
  });
  const client = connect(relayPort);
  client.write('x');
  await up;
  relay?.stop();
  t.equal((await drain(client)).end, 'ECONNRESET');
  t.equal((await result).end, 'stopped');
});
