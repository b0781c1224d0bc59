import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import type { CopyMode, NativePlane } from '../../src/relay/native.js';
import { parseIPv4 } from '../../src/net/address.js';
import { backend, bothWays, connect, drain, echoPieces, nativeRelay, relayTo, sha, TIMEOUTS, type Rig } from '../fixtures/relay-rig.js';

const execFileP = promisify(execFile);

// What only the native data plane has: its memory (what it holds while a destination is full,
// nothing while a connection is idle), its byte counters of open connections, refusals and
// resets made by the plane itself, each with both ways of moving bytes (read/write, splice).
// The semantics shared with the JavaScript plane are test/relay/relay.ts's, on both.

/** What one read takes (native/src/copy.c): 64 KiB, and 1 MiB once a direction moves bulk by read/write. */
const SMALL_READ = 64 * 1024;
const BULK_READ = 1 << 20;
/** The most one direction holds in user space: one read's worth. */
const MOST_HELD: Record<CopyMode, number> = { rw: BULK_READ, splice: SMALL_READ };
/** Bulk buffers holding bytes at once, at most (MAX_BULK_HELD), and pooled ones (MAX_FREE_BULK). */
const MOST_BULK_HELD = 16;
const BULK_POOLED = 2;

async function until(check: () => boolean, ms = 5000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return true;
}

/** The native plane in front of `backendPort`, moving bytes as `copy` says. */
async function rig(t: Test, backendPort: number, copy: CopyMode): Promise<Rig & { plane: NativePlane<number> }> {
  const relay = await relayTo(t, backendPort, { plane: copy === 'splice' ? 'native/splice' : 'native' });
  return Object.assign(relay, { plane: relay.native as NativePlane<number> });
}

for (const copy of ['rw', 'splice'] as const) {
  t.test(`${copy}: 64 MiB each way at once arrive whole, counted exactly, and nothing is held after`, async (t) => {
    let plane: NativePlane<number> | undefined;
    await bothWays(t, 64 << 20, async (port: number) => {
      const r = await rig(t, port, copy);
      plane = r.plane;
      return r;
    });
    const stats = (plane as NativePlane<number>).stats();
    t.same([stats.conns, stats.heldBuffers, stats.heldBytes, stats.up, stats.down], [0, 0, 0, 0, 0], 'nothing open, nothing held');
    if (copy === 'rw') t.ok(stats.bulkBuffers <= 1 + BULK_POOLED, `bulk buffers kept for the next bulk: ${stats.bulkBuffers}`);
    else t.equal(stats.bulkBuffers, 0, 'splicing takes no bulk buffer');
  });

  t.test(`${copy}: many connections moving small pieces at once never see each other's bytes`, async (t) => {
    const port = await backend(t, (socket) => socket.pipe(socket));
    const r = await rig(t, port, copy);
    t.equal(await echoPieces(r.port, 100, 40), 100, 'every echo is its own payload, whole');
  });

  t.test(`${copy}: a client that does not read holds the server back, with at most one read held`, async (t) => {
    const payload = randomBytes(32 << 20);
    const port = await backend(t, (socket) => socket.end(payload));
    const r = await rig(t, port, copy);
    const client = net.connect({ host: '::1', port: r.port });
    client.pause();
    t.ok(await until(() => r.plane.stats().down > 0), 'the backend started sending');
    // Once the kernel's buffers are full, the plane stops reading the server: no byte for 200 ms.
    let last = -1;
    for (let now = 0; now !== last; await new Promise((resolve) => setTimeout(resolve, 200))) {
      last = now;
      now = r.plane.stats().down;
    }
    const stats = r.plane.stats();
    t.ok(stats.heldBytes <= MOST_HELD[copy], `at most one read held in user space (${stats.heldBytes} bytes in ${stats.heldBuffers} buffers)`);
    t.ok(stats.down < payload.length, `the server is held back (${stats.down} of ${payload.length} bytes read)`);
    const got = drain(client);
    client.resume();
    const { data, end } = await got;
    t.equal(end, 'eof');
    t.equal(sha(data), sha(payload), 'everything arrives once the client reads');
  });

  t.test(`${copy}: idle connections hold no buffer, only their struct`, async (t) => {
    const COUNT = 500;
    const port = await backend(t, (socket) => socket.once('data', (first: Buffer) => socket.write(first)));
    const r = await rig(t, port, copy);
    const clients = await Promise.all(
      Array.from({ length: COUNT }, async () => {
        const client = connect(r.port);
        client.write(randomBytes(3000));
        await once(client, 'data');
        return client;
      }),
    );
    t.teardown(() => clients.forEach((client) => client.destroy()));
    const stats = r.plane.stats();
    t.equal(stats.conns, COUNT, `${COUNT} relayed connections open`);
    t.same([stats.heldBuffers, stats.heldBytes, stats.bulkBuffers], [0, 0, 0], 'once idle, none holds a byte, and small messages took no bulk buffer');
    t.ok(stats.connSize <= 192, `one connection's struct is ${stats.connSize} bytes`);
    if (copy === 'splice') t.ok(stats.pipes <= 64, `pipes kept for reuse: ${stats.pipes}, none per idle connection`);
    else t.equal(stats.pipes, 0, 'read/write opens no pipe');
    t.equal(stats.up, COUNT * 3000, 'the bytes of open connections are counted');
  });

  t.test(`${copy}: a connection the owner refuses is reset, and one it resets ends 'stopped'`, async (t) => {
    const port = await backend(t, () => {});
    const r = await rig(t, port, copy);
    const client = connect(r.port);
    client.write('x');
    t.ok(await until(() => r.plane.stats().up === 1), 'relayed, its byte read');
    r.plane.resetAll();
    t.equal((await drain(client)).end, 'ECONNRESET', 'the client sees a reset');
    const result = await r.next();
    t.same([result.end, result.up, result.error], ['stopped', 1, undefined]);
  });
}

t.test('a refusal: the owner does not dial, the client is reset and nothing is counted', async (t) => {
  const { NativePlane, loadNative } = await import('../../src/relay/native.js');
  const { bindHandle } = await import('../../src/relay/listener.js');
  const { parseIPv6 } = await import('../../src/net/address.js');
  const addon = loadNative().addon;
  if (addon === undefined) throw new Error('the native addon did not load');
  const handle = bindHandle('::1', 0);
  if (typeof handle === 'string') throw new Error(handle);
  const seen: string[] = [];
  const plane = new NativePlane(
    addon,
    {
      accepted: (local, localPort, remote, remotePort, localBits, remoteBits) => {
        seen.push(`${local} ${localPort} ${remote} ${remotePort}`);
        // The numbers the decision works on, made from the address's bytes in C: the text's.
        t.same([localBits, remoteBits], [parseIPv6(local), parseIPv6(remote)], 'the addresses as numbers are their text parsed');
        return undefined;
      },
      established: () => t.fail('never established'),
      closed: () => t.fail('a refused connection is not a relay that closed'),
      acceptFailed: (code) => t.fail(code),
    },
    'rw',
  );
  plane.listen(handle, 16, 60_000);
  t.teardown(() => plane.close());
  const bound: { port?: number } = {};
  handle.getsockname(bound);
  // The reset may come before Node reports the connect: the client's port is not asked for.
  t.equal((await drain(connect(bound.port as number))).end, 'ECONNRESET');
  t.match(seen, [new RegExp(`^::1 ${bound.port} ::1 \\d+$`)], 'the owner was asked once, with both addresses');
  t.same([plane.size, plane.stats().conns], [0, 0]);
});

t.test('splice pipes: a budget from the descriptor limit, taken for bulk only, and a plane without any still relays', async (t) => {
  const { pipeBudget } = await import('../../src/relay/native.js');
  t.same([64, 1023, 1024, 65_536, 1 << 20].map(pipeBudget), [0, 0, 16, 256, 256], 'none below 1,024 descriptors, one per 64, 256 at most');
  const port = await backend(t, (socket) => socket.pipe(socket));
  const r = await rig(t, port, 'splice');
  /** 4 MiB echoed through the relay, in one write: its reads fill the buffer, and it splices. */
  const bulk = async (): Promise<boolean> => {
    const payload = randomBytes(4 << 20);
    const client = connect(r.port);
    const got = drain(client);
    client.end(payload);
    const { data, end } = await got;
    return end === 'eof' && data.equals(payload);
  };
  t.equal(await echoPieces(r.port, 10, 5), 10, 'small messages relayed');
  t.equal(r.plane.stats().pipes, 0, 'with read/write: no pipe is taken for a message that does not fill a read');
  t.ok(await bulk(), 'bulk relayed whole');
  const big = r.plane.stats();
  t.ok(big.pipes > 0, `with pipes, kept for the next bulk: ${big.pipes}`);
  // The rig's limit is 256 pipes: 16 MiB of capacity, of which the first pipes take 1 MiB each.
  t.equal(big.pipeBytes, big.pipes * (1 << 20), `each of 1 MiB while half the budget is free: ${big.pipeBytes} bytes`);
  r.plane.pipeLimit(16);
  const lowered = r.plane.stats();
  t.ok(
    lowered.pipeBytes <= 16 * 64 * 1024,
    `a lower limit closes the pooled pipes its budget has no room for: ${lowered.pipes} left, ${lowered.pipeBytes} bytes`,
  );
  r.plane.pipeLimit(0);
  t.same([r.plane.stats().pipes, r.plane.stats().pipeBytes], [0, 0], 'a limit of none closes them all, and takes their capacity off the budget');
  r.plane.pipeLimit(16);
  t.ok(await bulk(), 'bulk relayed whole with a budget of 16 × 64 KiB');
  const small = r.plane.stats();
  t.ok(
    small.pipes > 0 && small.pipeBytes === small.pipes * 64 * 1024,
    `in pipes of the default 64 KiB, which is all 1 MiB of budget allows: ${small.pipes} pipes, ${small.pipeBytes} bytes`,
  );
  r.plane.pipeLimit(0);
  t.equal(r.plane.stats().pipes, 0, 'a limit of none closes the pooled ones');
  t.ok(await bulk(), 'and bulk is copied instead, whole');
  t.equal(r.plane.stats().pipes, 0, 'without opening one');
});

t.test('rw: directions stalled behind clients that do not read hold at most 16 bulk buffers, the rest one small read each', async (t) => {
  const COUNT = 20;
  // More than the kernel's buffers take on the way (up to 4 MiB sent and 6 MiB received per
  // socket on loopback, two sockets on each side): every direction must stall holding bytes.
  const payload = randomBytes(32 << 20);
  const port = await backend(t, (socket) => socket.end(payload));
  const r = await rig(t, port, 'rw');
  const clients = Array.from({ length: COUNT }, () => {
    const client = net.connect({ host: '::1', port: r.port });
    client.pause();
    return client;
  });
  t.teardown(() => clients.forEach((client) => client.destroy()));
  t.ok(await until(() => r.plane.stats().conns === COUNT), `${COUNT} relayed connections open`);
  // Every direction fills the kernel's buffers on both sides, then stops, holding what its
  // client's socket did not take.
  t.ok(await until(() => r.plane.stats().heldBuffers === COUNT, 30_000), `every direction holds bytes (${r.plane.stats().heldBuffers})`);
  const stats = r.plane.stats();
  t.ok(stats.bulkBuffers <= MOST_BULK_HELD + 1 + BULK_POOLED, `bulk buffers: ${stats.bulkBuffers}`);
  const bound = MOST_BULK_HELD * BULK_READ + (stats.heldBuffers - MOST_BULK_HELD) * SMALL_READ;
  t.ok(stats.heldBytes <= bound, `held: ${stats.heldBytes} bytes, at most ${bound}`);
  const got = await Promise.all(
    clients.map(async (client) => {
      const done = drain(client);
      client.resume();
      const { data, end } = await done;
      return end === 'eof' && data.length === payload.length && sha(data) === sha(payload);
    }),
  );
  t.equal(got.filter(Boolean).length, COUNT, 'every client gets its 32 MiB whole once it reads');
  const after = r.plane.stats();
  t.same([after.heldBuffers, after.heldBytes], [0, 0], 'nothing held after');
  t.ok(after.bulkBuffers <= 1 + BULK_POOLED, `bulk buffers kept for the next bulk: ${after.bulkBuffers}`);
});

t.test('events beyond the window are handed over too, in order: one event per call, 300 connections closing at once', async (t) => {
  // The plane hands JavaScript its established and closed events once per turn of the loop,
  // through a window of a fixed size (native/src/binding.c): with room for one event, every
  // event past the first of a turn makes it hand over what it holds first.
  const COUNT = 300;
  const PAYLOAD = 100;
  const port = await backend(t, (socket) => socket.pipe(socket));
  const seen = new Map<number, string[]>();
  const note = (clientPort: number, what: string): void => {
    const list = seen.get(clientPort) ?? [];
    list.push(what);
    seen.set(clientPort, list);
  };
  let established = 0;
  const { port: relayPort, plane } = nativeRelay(
    t,
    { ipv4: parseIPv4('127.0.0.1') as number, port, timeouts: TIMEOUTS, preamble: undefined },
    () => (established += 1),
    (result, clientPort) => note(clientPort, `${result.end} ${result.up} ${result.down}`),
    'rw',
    1,
  );
  const clients = await Promise.all(
    Array.from({ length: COUNT }, async () => {
      const client = connect(relayPort);
      await once(client, 'connect');
      const clientPort = client.localPort as number;
      const done = drain(client);
      client.end(Buffer.alloc(PAYLOAD, 7));
      const { data, end } = await done;
      return { port: clientPort, whole: end === 'eof' && data.length === PAYLOAD };
    }),
  );
  t.equal(clients.filter((c) => c.whole).length, COUNT, 'every client gets its bytes back and a clean end');
  t.ok(await until(() => plane.size === 0), `every connection closed (${plane.size} open)`);
  t.equal(established, COUNT, 'every connection was reported established once');
  const wrong = clients.filter((c) => seen.get(c.port)?.join() !== `fin ${PAYLOAD} ${PAYLOAD}`);
  t.same(
    wrong.map((c) => `${c.port}: ${seen.get(c.port)?.join(' | ') ?? 'never closed'}`),
    [],
    'each connection closed once, with its exact counts',
  );
  t.equal(plane.stats().conns, 0, 'the plane holds none');
});

t.test('ids are reused at once: 2,000 connections, 50 at a time, and each close is reported for its own connection', async (t) => {
  // A closed connection's id is the next one accepted (the plane keeps its free ids as a
  // stack), while its closed event may still wait for the end of the turn: the plane must hand
  // it over before the accept that reuses the id, or JavaScript would end the new connection
  // with the old one's result and never hear of the new one's end. The clients run in a process
  // of their own, so that closes and accepts meet in the plane's turns as they do in a worker.
  const TOTAL = 2000;
  const PAYLOAD = 100;
  const port = await backend(t, (socket) => socket.pipe(socket));
  const seen = new Map<number, string[]>();
  let established = 0;
  const { port: relayPort, plane } = nativeRelay(
    t,
    { ipv4: parseIPv4('127.0.0.1') as number, port, timeouts: TIMEOUTS, preamble: undefined },
    () => (established += 1),
    (result, clientPort) => seen.set(clientPort, [...(seen.get(clientPort) ?? []), `${result.end} ${result.up} ${result.down}`]),
  );
  // 50 loops of connect, send PAYLOAD bytes and FIN, read them back to the end; prints the
  // client ports used and how many exchanges came back whole.
  const clients = `
    const net = require('node:net');
    const ports = []; let started = 0, whole = 0;
    const one = () => new Promise((resolve) => {
      const c = net.connect(${relayPort}, '::1', () => { ports.push(c.localPort); c.end(Buffer.alloc(${PAYLOAD}, 7)); });
      let got = 0;
      c.on('data', (d) => (got += d.length));
      c.on('end', () => { if (got === ${PAYLOAD}) whole += 1; });
      c.on('error', () => {});
      c.on('close', resolve);
    });
    const loop = async () => { while (started < ${TOTAL}) { started += 1; await one(); } };
    Promise.all(Array.from({ length: 50 }, loop)).then(() => console.log(JSON.stringify({ ports, whole })));
  `;
  const { stdout } = await execFileP(process.execPath, ['-e', clients], { timeout: 60_000 });
  const { ports, whole } = JSON.parse(stdout) as { ports: number[]; whole: number };
  t.equal(whole, TOTAL, 'every client gets its bytes back and a clean end');
  t.ok(await until(() => plane.size === 0), `every connection closed (${plane.size} open)`);
  t.equal(established, TOTAL, 'every connection was reported established once');
  const used = new Map<number, number>();
  for (const p of ports) used.set(p, (used.get(p) ?? 0) + 1);
  const wrong = [...used].filter(([p, n]) => seen.get(p)?.join() !== Array(n).fill(`fin ${PAYLOAD} ${PAYLOAD}`).join());
  t.same(
    wrong.map(([p, n]) => `${p} (${n} clients): ${seen.get(p)?.join(' | ') ?? 'never closed'}`),
    [],
    'each connection closed once, with its exact counts',
  );
});
