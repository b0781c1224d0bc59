import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { createInterface } from 'node:readline';
import t from 'tap';
import { bindHandle, boundPort, Listener } from '../../src/relay/listener.js';

// Accepting on libuv's handle directly (src/relay/listener.ts), on real loopback sockets.

t.test('an accepted socket is paused, half-open, and has keepalive from its listener', async (t) => {
  const handle = bindHandle('::1', 0);
  if (typeof handle === 'string') throw new Error(`bind ::1: ${handle}`);
  const accepted: net.Socket[] = [];
  const listener = new Listener(
    handle,
    45_000,
    (socket) => accepted.push(socket),
    (code) => t.fail(code),
  );
  listener.listen(511);
  t.teardown(() => {
    listener.close();
    accepted.forEach((socket) => socket.destroy());
  });
  const port = listener.port as number;
  t.ok(port > 0, 'bound to a port of its own');
  const client = net.connect({ host: '::1', port });
  t.teardown(() => client.destroy());
  await once(client, 'connect');
  while (accepted.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  const socket = accepted[0] as net.Socket;
  t.equal(socket.localPort, port);
  t.equal(socket.remotePort, client.localPort);
  t.equal(socket.isPaused(), true, 'nothing is read before the relay asks');
  t.equal(socket.allowHalfOpen, true);
  // The kernel's view of the accepted socket: the keepalive timer, with the listener's delay.
  const ss = execFileSync('ss', ['-tnoH', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8' });
  t.match(ss, /timer:\(keepalive,(4[0-5]|3\d)sec/, `keepalive inherited from the listener: ${ss.trim()}`);
});

t.test('binding a port that is taken says EADDRINUSE, not a random port', async (t) => {
  const taken = net.createServer();
  await new Promise<void>((resolve) => taken.listen(0, '::1', resolve));
  t.teardown(() => taken.close());
  const port = (taken.address() as net.AddressInfo).port;
  t.equal(bindHandle('::1', port), 'EADDRINUSE');
  const free = bindHandle('::1', 0);
  if (typeof free === 'string') throw new Error(free);
  t.ok((boundPort(free) ?? 0) > 0);
  free.close();
});

t.test('a closed listener accepts no more', async (t) => {
  const handle = bindHandle('::1', 0);
  if (typeof handle === 'string') throw new Error(handle);
  const listener = new Listener(
    handle,
    60_000,
    () => t.fail('accepted after close'),
    (code) => t.fail(code),
  );
  listener.listen(511);
  const port = listener.port as number;
  listener.close();
  listener.close(); // twice is harmless
  const client = net.connect({ host: '::1', port });
  const [err] = (await once(client, 'error')) as [NodeJS.ErrnoException];
  t.equal(err.code, 'ECONNREFUSED');
});

for (const plane of ['js', 'native'])
  t.test(`${plane}: out of descriptors, the listener goes on and accepts again once some are free`, async (t) => {
    // At EMFILE libuv (and the native plane alike) accepts the waiting connections with a spare
    // descriptor and closes them at once, without telling the listener (the worker's descriptor
    // cap exists because of that); what must hold is that the listener survives it and accepts
    // again.
    const fixture = new URL('../fixtures/accept-limited.js', import.meta.url).pathname;
    // Node needs about 20 descriptors: 40 leaves room for a few connections, not for 60. tap
    // adds its coverage loader to every node it spawns (NODE_OPTIONS), and that loader needs
    // descriptors of its own: `env -u` keeps it out.
    const args = ['-u', 'NODE_OPTIONS', 'prlimit', '--nofile=40:40', process.execPath, fixture, plane];
    const child = spawn('env', args, { stdio: ['pipe', 'pipe', 'inherit'] });
    t.teardown(() => {
      if (child.exitCode === null) child.kill();
    });
    const lines = createInterface({ input: child.stdout });
    const messages: Record<string, unknown>[] = [];
    const waiters: (() => void)[] = [];
    lines.on('line', (line) => {
      messages.push(JSON.parse(line) as Record<string, unknown>);
      waiters.splice(0).forEach((wake) => wake());
    });
    const next = async (key: string): Promise<Record<string, unknown>> => {
      for (;;) {
        const found = messages.findIndex((message) => key in message);
        if (found >= 0) return messages.splice(found, 1)[0] as Record<string, unknown>;
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    };
    const count = async (): Promise<number> => {
      child.stdin.write('count\n');
      return (await next('held')).held as number;
    };
    const port = (await next('port')).port as number;
    const clients = Array.from({ length: 60 }, () => {
      const client = net.connect({ host: '::1', port });
      client.on('error', () => {});
      return client;
    });
    t.teardown(() => clients.forEach((client) => client.destroy()));
    // Closed by libuv with a FIN, reset by the native plane: either way a 'close' (once() would reject at the error).
    const closed = clients.map((client) => new Promise((resolve) => client.once('close', resolve)));
    // Those past the limit are closed by libuv; wait for the first of them.
    await Promise.race(closed);
    const held = await count();
    t.ok(held > 0 && held < 60, `it held what its descriptors allowed (${held} of 60)`);
    // At the limit with connections still arriving, the listener must not spin on EMFILE: the
    // waiting ones are shed, not left in the queue for the next turn of the loop to fail on.
    child.stdin.write('fill\n');
    await next('filled');
    const more = Array.from({ length: 20 }, () => net.connect({ host: '::1', port }).on('error', () => {}));
    clients.push(...more);
    const cpu = (): number => {
      const fields = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
      return Number(fields[11]) + Number(fields[12]); // utime + stime, in clock ticks
    };
    const before = cpu();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const ticks = cpu() - before;
    t.ok(ticks < 20, `no busy loop at the limit: ${ticks} ticks of CPU in 500 ms (a spin takes about 50)`);
    t.ok(
      more.every((client) => client.destroyed),
      'the connections that came with no descriptor left were closed at once',
    );
    child.stdin.write('free\n');
    let after = -1;
    for (let tries = 0; after !== 0 && tries < 100; tries++) after = await count();
    const late = net.connect({ host: '::1', port });
    late.on('error', () => {});
    clients.push(late);
    await once(late, 'connect');
    let accepted = 0;
    for (let tries = 0; accepted === 0 && tries < 100; tries++) {
      accepted = await count();
      if (accepted === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    t.equal(accepted, 1, 'once descriptors are free, the next connection is accepted');
    t.equal(child.exitCode, null, 'and the process never died');
    child.stdin.end();
    await once(child, 'exit');
  });
