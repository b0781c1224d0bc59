// The three-host network on its own, without the daemon: if these fail, the
// end-to-end tests cannot mean anything.
import t from 'tap';
import { ADDR, buildNetwork, isDone } from '../fixtures/netns.js';

const net = await buildNetwork(t);

t.test('each host has only the addresses it should', async (t) => {
  const c6v4 = (await net.run('c6', 'ip', ['-4', '-o', 'addr', 'show'])).stdout;
  t.match(c6v4, /127\.0\.0\.1/, 'c6 has IPv4 loopback');
  t.notMatch(c6v4.replace(/.*127\.0\.0\.1.*/g, ''), /inet /, 'c6 has no other IPv4 address');
  const s4v6 = (await net.run('s4', 'ip', ['-6', '-o', 'addr', 'show'])).stdout;
  t.equal(s4v6.trim(), '', 's4 has no IPv6 address at all');
  const xlFwd = (await net.run('xl', 'sysctl', ['-n', 'net.ipv4.ip_forward', 'net.ipv6.conf.all.forwarding'])).stdout;
  t.same(xlFwd.trim().split('\n'), ['0', '0'], 'xl forwards neither family');
});

t.test('an IPv4 client in xl reaches the server in s4 directly', async (t) => {
  const server = net.peer('s4', ['server', 'sink', '--host', ADDR.server4, '--port', '5999', '--timeout', '20']);
  await server.waitFor((l) => l.event === 'listening', { timeout: 5000 });
  const client = net.peer('xl', ['client', 'send', '1M', '--host', ADDR.server4, '--port', '5999', '--timeout', '10']);
  const c = await client.waitFor(isDone(), { timeout: 10_000 });
  const s = await server.waitFor(isDone(0), { timeout: 5000 });
  t.equal(c.end, 'eof', 'client: clean EOF');
  t.equal(s.end, 'eof', 'server: clean EOF');
  t.equal(s.received, 1024 * 1024, 'server got 1 MiB');
  t.equal(s.receivedSha, c.sentSha, 'sha256 equal');
  await server.stop();
});

t.test('an IPv6 client in c6 reaches xl', async (t) => {
  const server = net.peer('xl', ['server', 'echo', '--host', ADDR.xl6, '--port', '7000', '--timeout', '20']);
  await server.waitFor((l) => l.event === 'listening', { timeout: 5000 });
  const client = net.peer('c6', ['client', 'echo', '64K', '--host', ADDR.xl6, '--port', '7000', '--timeout', '10']);
  const c = await client.waitFor(isDone(), { timeout: 10_000 });
  t.equal(c.intact, true, 'echoed intact');
  t.equal(c.end, 'eof');
  await server.stop();
});

t.test('198.18.0.3 refuses, 198.18.2.0/24 is a black hole', async (t) => {
  const refused = net.peer('xl', ['client', 'sink', '--host', ADDR.closed4, '--port', '5999', '--timeout', '5']);
  const r = await refused.waitFor(isDone(), { timeout: 5000 });
  t.equal(r.end, 'ECONNREFUSED', 'closed port refuses');

  const before = await net.tcpCounters('s4');
  const hole = net.peer('xl', ['client', 'sink', '--host', ADDR.blackhole4, '--port', '5999', '--timeout', '1']);
  const exit = await hole.waitExit(5000);
  t.equal(exit.code, 3, 'the connect hangs until the peer gives up');
  t.ok(
    hole.lines.some((l) => l.event === 'timeout'),
    'peer reported its timeout',
  );
  const after = await net.tcpCounters('s4');
  t.equal(after.InSegs, before.InSegs, 's4 TCP saw none of those SYNs');
});

t.test('a peer that overruns --timeout exits non-zero', async (t) => {
  const server = net.peer('s4', ['server', 'hold', '--host', ADDR.server4, '--port', '5998', '--timeout', '0.5']);
  const exit = await server.waitExit(5000);
  t.equal(exit.code, 3);
});
