// The load generator: one process per use, so that it never shares an event loop with the
// relay, the server or the orchestrator. It reports on stdout, one JSON object a line, and
// takes commands ("go", "close") on stdin.
//
//   node dist/bench/load.js bulk  HOST PORT BYTES MAX_MS   one stream client→server; {sent,received,ms}
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

async function bulk(bytes: number, maxMs: number): Promise<void> {
  const socket = net.connect({ host, port, noDelay: true });
  let reply = '';
  socket.setEncoding('utf8');
  socket.on('data', (text: string) => (reply += text));
  const ended = once(socket, 'end');
  await once(socket, 'connect');
  const start = performance.now();
  const deadline = start + maxMs;
  socket.write('S');
  let sent = 0;
  while (sent < bytes && performance.now() < deadline) {
    const n = Math.min(CHUNK.length, bytes - sent);
    sent += n;
    if (!socket.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) await once(socket, 'drain');
  }
  socket.end();
  await ended; // the server's count, then its FIN: every byte has arrived
  const ms = performance.now() - start;
  emit({ sent, received: Number(reply.trim()), ms });
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
  const [a = '', b = ''] = rest;
  if (!host || !Number.isInteger(port)) throw new Error('usage: load.js bulk|churn|idle HOST PORT …');
  if (mode === 'bulk') await bulk(Number(a), Number(b));
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
