// The load generator: one process per use, so that it never shares an event loop with the
// relay, the server or the orchestrator. It reports on stdout, one JSON object a line, and
// takes commands ("go", "close") on stdin.
//
//   node dist/bench/load.js bulk  HOST PORT BYTES MAX_MS STREAMS up|down
//                                                          {ready}, waits for "go", then STREAMS streams at
//                                                          once, BYTES in all, client→server (up: the server
//                                                          counts and answers after the FIN) or server→client
//                                                          (down), each cut at MAX_MS; {sent,received,ms}
//   node dist/bench/load.js latency HOST PORT COUNT MAX_MS one kept connection, COUNT (or MAX_MS worth of)
//                                                          64-byte request/response round trips after 200
//                                                          uncounted ones; {count,p50,p90,p99,p999,max,mean} in µs
//   node dist/bench/load.js churn HOST PORT CLIENTS MS     {ready}, waits for "go", then CLIENTS loops of
//                                                          connect / send 64 B / read 64 B / close for MS;
//                                                          {connections,errors,ms,errorCodes}
//   node dist/bench/load.js idle  HOST PORT COUNT          opens COUNT connections (one echo each, so the
//                                                          relay's backend side is up), {open,errors},
//                                                          waits for "close", closes them, {closed}
import net from 'node:net';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';

const [mode, host = '', portText = '', ...rest] = process.argv.slice(2);
const port = Number(portText);

/** A 64-byte request that the server echoes ('E' is not its sink marker). */
const REQUEST = Buffer.alloc(64, 0x65);
REQUEST[0] = 0x45;
const CHUNK = Buffer.alloc(256 * 1024, 0x78);
/** An exchange that takes this long is broken, not slow. */
const EXCHANGE_TIMEOUT = 10_000;

/** One JSON line; stdout to a pipe is synchronous on Linux, so process.exit loses nothing. */
function emit(message: object): void {
  process.stdout.write(JSON.stringify(message) + '\n');
}

const commands = createInterface({ input: process.stdin });
function command(name: string): Promise<void> {
  return new Promise((resolve) => {
    const onLine = (line: string): void => {
      if (line.trim() !== name) return;
      commands.off('line', onLine);
      resolve();
    };
    commands.on('line', onLine);
  });
}

/**
 * Connect, send 64 bytes, read the 64-byte echo; then either close (FIN, and wait until the
 * connection is fully closed) or, with `keep`, resolve with the open socket.
 */
function exchange(keep: boolean): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, noDelay: true });
    let received = 0;
    const timer = setTimeout(() => socket.destroy(Object.assign(new Error('exchange timed out'), { code: 'TIMEOUT' })), EXCHANGE_TIMEOUT);
    socket.on('connect', () => socket.write(REQUEST));
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received < REQUEST.length) return;
      if (keep) {
        clearTimeout(timer);
        resolve(socket);
      } else socket.end();
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      if (received >= REQUEST.length) resolve(socket);
      else reject(Object.assign(new Error('closed before the echo'), { code: 'EARLY_CLOSE' }));
    });
  });
}

/** One stream client→server: BYTES or until `deadline`, then FIN; the server's count is the result. */
async function upload(bytes: number, deadline: number): Promise<{ sent: number; received: number; end: number }> {
  const socket = net.connect({ host, port, noDelay: true });
  let reply = '';
  socket.setEncoding('utf8');
  socket.on('data', (text: string) => (reply += text));
  const ended = once(socket, 'end');
  await once(socket, 'connect');
  socket.write('S');
  let sent = 0;
  while (sent < bytes && performance.now() < deadline) {
    const n = Math.min(CHUNK.length, bytes - sent);
    sent += n;
    if (!socket.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) await once(socket, 'drain');
  }
  socket.end();
  await ended; // the server's count, then its FIN: every byte has arrived
  const end = performance.now();
  socket.destroy();
  return { sent, received: Number(reply.trim()), end };
}

/** One stream server→client: asks for BYTES and counts them until the server's FIN or `deadline`. */
function download(bytes: number, deadline: number): Promise<{ sent: number; received: number; end: number }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, noDelay: true });
    let received = 0;
    let done = false;
    const finish = (err: Error | null): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const end = performance.now();
      socket.destroy();
      if (err) reject(err);
      // Cut at the deadline, the server wrote no more than was read: count what arrived.
      else resolve({ sent: received, received, end });
    };
    const timer = setTimeout(() => finish(null), Math.max(0, deadline - performance.now()));
    socket.on('connect', () => socket.write(`R${bytes}\n`));
    socket.on('data', (chunk: Buffer) => (received += chunk.length));
    socket.on('end', () => (received === bytes ? finish(null) : finish(new Error(`server sent ${received} of ${bytes} bytes`))));
    socket.on('error', (err) => finish(err));
  });
}

async function bulk(bytes: number, maxMs: number, streams: number, direction: string): Promise<void> {
  emit({ ready: true });
  await command('go');
  const start = performance.now();
  const deadline = start + maxMs;
  const each = Math.floor(bytes / streams);
  const runs = await Promise.all(Array.from({ length: streams }, () => (direction === 'down' ? download(each, deadline) : upload(each, deadline))));
  emit({
    sent: runs.reduce((sum, r) => sum + r.sent, 0),
    received: runs.reduce((sum, r) => sum + r.received, 0),
    ms: Math.max(...runs.map((r) => r.end)) - start,
    streams,
    direction,
  });
}

/** Round trips of 64 bytes on one connection, one at a time; percentiles in µs. */
async function latency(count: number, maxMs: number): Promise<void> {
  const socket = net.connect({ host, port, noDelay: true });
  await once(socket, 'connect');
  let received = 0;
  let wake: (() => void) | null = null;
  socket.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (received >= REQUEST.length && wake) {
      received -= REQUEST.length;
      const w = wake;
      wake = null;
      w();
    }
  });
  const failed = new Promise<never>((_, reject) => {
    socket.on('error', reject);
    socket.on('close', () => reject(new Error('closed during the latency run')));
  });
  const roundTrip = (): Promise<void> => {
    const answered = new Promise<void>((resolve) => (wake = resolve));
    socket.write(REQUEST);
    return answered;
  };
  const WARM_UP = 200;
  const samples = new Float64Array(count);
  let n = 0;
  let deadline = Infinity;
  for (let i = 0; i < WARM_UP + count && performance.now() < deadline; i++) {
    const t0 = performance.now();
    await Promise.race([roundTrip(), failed]);
    if (i === WARM_UP - 1) deadline = performance.now() + maxMs;
    if (i >= WARM_UP) samples[n++] = (performance.now() - t0) * 1000;
  }
  socket.removeAllListeners('close');
  socket.destroy();
  const sorted = samples.subarray(0, n).sort();
  const at = (q: number): number => sorted[Math.min(n - 1, Math.floor(q * n))] ?? NaN;
  emit({ count: n, p50: at(0.5), p90: at(0.9), p99: at(0.99), p999: at(0.999), max: sorted[n - 1] ?? NaN, mean: sorted.reduce((a, b) => a + b, 0) / n });
}

async function churn(clients: number, ms: number): Promise<void> {
  emit({ ready: true });
  await command('go');
  const start = performance.now();
  const deadline = start + ms;
  let connections = 0;
  let errors = 0;
  const errorCodes: Record<string, number> = {};
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < deadline) {
        try {
          await exchange(false);
          connections++;
        } catch (err) {
          errors++;
          const code = (err as NodeJS.ErrnoException).code ?? 'ERROR';
          errorCodes[code] = (errorCodes[code] ?? 0) + 1;
          await sleep(5); // a relay that refuses must not turn this into a busy loop
        }
      }
    }),
  );
  emit({ connections, errors, ms: performance.now() - start, errorCodes });
}

async function idle(count: number): Promise<void> {
  const sockets: net.Socket[] = [];
  let started = 0;
  let errors = 0;
  // 50 at a time: a burst of 1,000 SYNs would overflow the relay's accept backlog.
  await Promise.all(
    Array.from({ length: 50 }, async () => {
      while (started < count) {
        started++;
        try {
          sockets.push(await exchange(true));
        } catch {
          errors++;
        }
      }
    }),
  );
  emit({ open: sockets.length, errors });
  await command('close');
  const closed = Promise.all(
    sockets.map((socket) => {
      if (socket.destroyed) return Promise.resolve();
      const done = once(socket, 'close').catch(() => undefined);
      socket.end();
      return done;
    }),
  );
  await Promise.race([closed, sleep(5000)]);
  for (const socket of sockets) socket.destroy();
  emit({ closed: true });
}

async function main(): Promise<void> {
  const [a = '', b = '', c = '1', d = 'up'] = rest;
  if (!host || !Number.isInteger(port)) throw new Error('usage: load.js bulk|latency|churn|idle HOST PORT …');
  if (mode === 'bulk') await bulk(Number(a), Number(b), Number(c), d);
  else if (mode === 'latency') await latency(Number(a), Number(b));
  else if (mode === 'churn') await churn(Number(a), Number(b));
  else if (mode === 'idle') await idle(Number(a));
  else throw new Error(`unknown mode ${mode ?? ''}`);
}

main().then(
  () => process.exit(0),
  (err: NodeJS.ErrnoException) => {
    emit({ error: err.code ?? err.message });
    process.exit(1);
  },
);
