// What `source` costs in ephemeral ports, as the README says: Node.js binds the backend socket
// to the source address before it connects (it has no IP_BIND_ADDRESS_NO_PORT), so the kernel
// picks the port at bind(), among the ports free on that address for any destination. With the
// translator's port range cut to 50 ports, a service with `source` holds 50 connections across
// two backends, and refuses the rest visibly (a reset, "connect failed" EADDRINUSE in the log);
// a service without it holds 50 to each backend.
import t, { type Test } from 'tap';
import { ADDR, buildNetwork, translate, type Line } from '../fixtures/netns.js';
import { daemonStatus, startDaemon } from '../fixtures/daemon.js';

const SOURCE = '198.18.0.5';
const PORTS = 50;
const PER_BACKEND = 40;
const BACKEND_PORT = 7100;

const net = await buildNetwork(t);
await net.run('xl', 'ip', ['addr', 'add', `${SOURCE}/24`, 'dev', 'to-s4']);
const servers = [ADDR.server4, ADDR.closed4].map((host) =>
  net.peer('s4', ['server', 'sink', '--host', host, '--port', String(BACKEND_PORT), '--timeout', '120']),
);
for (const server of servers) await server.waitFor((l) => l.event === 'listening', { timeout: 5000, what: 'listening' });
const daemon = await startDaemon(t, net, {
  services: [
    { port: 7001, backendPort: BACKEND_PORT, source: SOURCE },
    { port: 7002, backendPort: BACKEND_PORT },
  ],
  // 80 connections at once from one client: neither the rate limit nor the 64 pending connects
  // per source (a fast backend answers within the burst, a slow moment does not) may take any.
  limits: { newConnectionsPerSecond: 0, pendingConnectsPerSource: 1000 },
  timeouts: { connect: '2s' },
});

let ranges = 0;

/**
 * PER_BACKEND held connections to each of the two backends through `port`, with a fresh range of
 * PORTS ephemeral ports (the last test's are in TIME_WAIT); how many the daemon holds then, and
 * how many failed to reach their backend.
 */
async function hold(t: Test, port: number): Promise<{ active: number; failed: number; errors: Line[] }> {
  const first = 40000 + 100 * ranges++;
  await net.run('xl', 'sysctl', ['-q', '-w', `net.ipv4.ip_local_port_range=${first} ${first + PORTS - 1}`]);
  const from = daemon.proc.mark();
  const clients = [ADDR.server4, ADDR.closed4].map((ipv4) =>
    net.peer('c6', ['client', 'hold', '--host', translate(ipv4), '--port', String(port), '--conns', String(PER_BACKEND), '--timeout', '30']),
  );
  t.teardown(() => Promise.all(clients.map((c) => c.stop(2000))));
  // The clients connect at once; each relay then holds its backend, or has failed well within
  // the connect timeout (2 s): a bind that finds no port fails at once.
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  const totals = (await daemonStatus(net, daemon)).ports.find((p) => p.port === port)?.totals;
  // The log lines of connect failures are rate-limited; the counters are not.
  return { active: totals?.active ?? -1, failed: totals?.connectFailed ?? -1, errors: daemon.proc.filter((l) => l.msg === 'relay closed', from) };
}

t.test(`with source: ${PORTS} ports are all one address gets, across both backends`, async (t) => {
  const { active, failed, errors } = await hold(t, 7001);
  t.equal(active, PORTS, `${active} of ${2 * PER_BACKEND} relayed`);
  t.equal(failed, 2 * PER_BACKEND - PORTS, 'the rest failed to reach their backend, and were reset');
  t.match(errors[0], { end: 'connect failed', error: 'EADDRINUSE' }, 'at bind(): no port left on the address');
});

t.test(`without source: ${PORTS} ports to each backend`, async (t) => {
  const { active, failed } = await hold(t, 7002);
  t.equal(active, 2 * PER_BACKEND, `${active} of ${2 * PER_BACKEND} relayed`);
  t.equal(failed, 0);
});

t.test('the alternative the README gives: a preferred source on the route, and no `source`', async (t) => {
  await net.run('xl', 'ip', ['route', 'replace', '198.18.0.0/24', 'dev', 'to-s4', 'src', SOURCE]);
  t.teardown(() => net.run('xl', 'ip', ['route', 'replace', '198.18.0.0/24', 'dev', 'to-s4', 'src', ADDR.xl4]));
  const marks = servers.map((server) => server.mark());
  const { active, failed } = await hold(t, 7002);
  t.equal(active, 2 * PER_BACKEND, `${active} of ${2 * PER_BACKEND} relayed: the port is picked at connect(), per backend`);
  t.equal(failed, 0);
  const remotes = servers.flatMap((server, i) => server.filter((l) => l.event === 'accepted', marks[i]).map((l) => String(l.remote).split(':')[0]));
  t.same(new Set(remotes), new Set([SOURCE]), `and every backend connection comes from ${SOURCE}`);
});
