// The listen backlog the kernel keeps for a port is the one the config asks for, or by default
// net.core.somaxconn of the translator's namespace: ss shows it as a listening socket's Send-Q.
// On whichever data plane the suite runs (both planes listen(2) with it).
import t from 'tap';
import { startDaemon } from '../fixtures/daemon.js';
import { buildNetwork } from '../fixtures/netns.js';

const net = await buildNetwork(t);

/** The backlog of the listening socket on `port` in xl (ss: Send-Q of a LISTEN socket). */
async function backlog(port: number): Promise<number> {
  const line = (await net.run('xl', 'ss', ['-Hltn', `sport = :${port}`])).stdout.trim().split('\n')[0] ?? '';
  return Number(line.split(/\s+/)[2]);
}

t.test('listenBacklog: 100 is the backlog the kernel keeps', async (t) => {
  await startDaemon(t, net, { services: [{ port: 5999 }], listenBacklog: 100 });
  t.equal(await backlog(5999), 100);
});

t.test('by default, net.core.somaxconn of the namespace', async (t) => {
  // Not the kernel's default, so that a fixed 4096 (or node's 511) would show.
  await net.run('xl', 'sysctl', ['-q', '-w', 'net.core.somaxconn=3000']);
  await startDaemon(t, net, { services: [{ port: 6100 }] });
  t.equal(await backlog(6100), 3000);
});
