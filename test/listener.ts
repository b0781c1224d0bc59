import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import t from 'tap';
import { bindHandle, boundPort, Listener } from '../src/listener.js';

// Accepting on libuv's handle directly (src/listener.ts), on real loopback sockets.

t.test('an accepted socket is paused, half-open, and has keepalive from its listener', async (t) => {
  const handle = bindHandle('::1', 0);
  if (typeof handle === 'string') throw new Error(`bind ::1: ${handle}`);
  const accepted: net.Socket[] = [];
  const listener = new Listener(handle, 45_000, (socket) => accepted.push(socket), (code) => t.fail(code));
  listener.listen();
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
  const listener = new Listener(handle, 60_000, () => t.fail('accepted after close'), (code) => t.fail(code));
  listener.listen();
  const port = listener.port as number;
  listener.close();
  listener.close(); // twice is harmless
  const client = net.connect({ host: '::1', port });
  const [err] = (await once(client, 'error')) as [NodeJS.ErrnoException];
  t.equal(err.code, 'ECONNREFUSED');
});
