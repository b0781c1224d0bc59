// The supervisor in-process, with stand-in workers: what it tells them when it starts, reloads
// and stops, how it restarts one that dies, and how it backs off from one that keeps dying.
// The sockets it binds are real; the workers are EventEmitters that answer as a worker would.
// test/netns/ runs the same paths end to end with real worker processes.
import { writeFileSync } from 'node:fs';
import t from 'tap';
import { restartBackoff } from '../../src/daemon/worker-process.js';
import { configText, freePorts, healthy, supervisor, until, type Behaviour, type FakeWorker } from '../fixtures/fake-workers.js';

t.test('restartBackoff: immediate once, then doubling per quick crash up to 30 s; a healthy run starts over', async (t) => {
  let failures = 0;
  const delays: number[] = [];
  for (let i = 0; i < 12; i++) {
    const next = restartBackoff(failures, 50);
    failures = next.failures;
    delays.push(next.delay);
  }
  t.same(delays, [0, 100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000]);
  t.same(restartBackoff(failures, 10_000), { failures: 0, delay: 0 }, 'after 10 s of running, a crash is the first again');
  t.same(restartBackoff(0, 9_999), { failures: 1, delay: 0 });
});

t.test('start: every worker of every port gets the bound socket and the config, and start waits for each', async (t) => {
  const [a, b] = await freePorts(2);
  const { sup, workers, portOf } = await supervisor(t, configText(`[{port: ${a}, workers: 2}, {port: ${b}}]`));
  await sup.start();
  t.equal(workers.length, 3, 'one process per worker');
  t.same(workers.map(portOf).sort(), [a, a, b].sort(), 'two for the first port, one for the second');
  for (const w of workers) {
    t.equal(w.gotHandle, true, `worker ${w.pid}: the listen message carries the socket`);
    t.match(w.received[0], { type: 'listen', config: { services: [{ port: a }, { port: b }] } });
  }
  const status = await sup.status();
  t.equal(status.totals.relayed, 9, 'status sums the counters of every worker');
});

t.test('start fails, and undoes what it did, when a worker cannot listen', async (t) => {
  const [a, b] = await freePorts(2);
  const { sup, workers, portOf } = await supervisor(t, configText(`[{port: ${a}}, {port: ${b}}]`), (port) =>
    port === b ? (w, m) => (m.type === 'listen' ? w.reply({ type: 'listen failed', code: 'EADDRINUSE', message: 'in use' }) : undefined) : healthy,
  );
  await t.rejects(sup.start(), { code: 'ADDRESS_IN_USE', message: new RegExp(`port ${b}: address already in use`) });
  const good = workers.find((w) => portOf(w) === a) as FakeWorker;
  t.match(good.received.at(-1), { type: 'drain' }, 'the worker that did listen is told to drain');
  t.equal(good.connected, false, 'and has exited');
});

t.test('a worker that dies is restarted with the same socket; one that keeps dying backs off', async (t) => {
  const [a] = await freePorts(1);
  let crashes = 0;
  // Every process listens, then dies at once: a crash loop.
  const crashing: Behaviour = (w, m) => {
    if (m.type !== 'listen') return healthy(w, m);
    w.reply({ type: 'listening', dataPlane: 'js', fallback: null });
    if (crashes++ < 6) setImmediate(() => w.exit(1, null));
  };
  const { sup, workers, lines } = await supervisor(t, configText(`[{port: ${a}}]`), () => crashing);
  await sup.start();
  await until('six restarts', () => workers.length === 7, 8000);
  const exits = lines.filter((l) => l.msg === 'worker exited');
  t.same(
    exits.map((l) => l.restartIn),
    [0, 100, 200, 400, 800, 1600],
    'restarts wait 0, then 100 ms doubling, per quick crash',
  );
  t.ok(
    workers.every((w) => w.gotHandle),
    'every replacement gets the socket',
  );
  const status = await sup.status();
  t.equal(status.ports[0]?.workers[0]?.restarts, 6, 'status counts the restarts');
  t.equal(status.ports[0]?.workers[0]?.answering, true, 'and the last one answers');
});

t.test('reload: new config to running workers, workers added and drained, ports opened and closed', async (t) => {
  const [a, b, c] = await freePorts(3);
  const { sup, workers, file, portOf } = await supervisor(t, configText(`[{port: ${a}}, {port: ${b}}]`));
  await sup.start();
  const [first, second] = [workers.find((w) => portOf(w) === a), workers.find((w) => portOf(w) === b)] as FakeWorker[];
  writeFileSync(
    file,
    configText(`[{port: ${a}, workers: 2}, {port: ${c}}]`, '[{action: permit, to: 192.0.2.10}]', 'prefixes: [2001:db8:6000::/96]\n').replace(
      /^prefixes: \[2001:db8:5999::\/96\]\n/,
      '',
    ),
  );
  const outcome = await sup.reload();
  t.equal(outcome.ok, true, outcome.error ?? 'reloaded');
  t.same(outcome.changes, [
    `port ${a}: workers 1 -> 2`,
    `port ${c} added (backendPort ${c}, workers 1, proxyProtocol none, source not set, protocol tcp)`,
    `port ${b} removed (its connections drain)`,
    'rules changed (0 -> 1 rules)',
  ]);
  t.match(outcome.warnings, [/^prefixes is unchanged until faithd6 is restarted/], 'the prefixes wait for a restart');
  t.match(
    first?.received.at(-1),
    { type: 'config', config: { rules: [{ action: 'permit' }], prefixes: ['2001:db8:5999::/96'] } },
    'the running worker of the kept port gets the new rules, and the running prefixes',
  );
  t.equal(first?.connected, true, 'and keeps running');
  await until('the removed port drained', () => second?.connected === false);
  t.match(second?.received.at(-1), { type: 'drain' }, "the removed port's worker was told to drain");
  t.same(
    workers
      .filter((w) => w.connected)
      .map(portOf)
      .sort(),
    [a, a, c].sort(),
    'a second worker for the kept port, one for the new port',
  );
});

t.test('a reload that fails changes nothing', async (t) => {
  const [a] = await freePorts(1);
  const { sup, workers, file } = await supervisor(t, configText(`[{port: ${a}}]`));
  await sup.start();
  writeFileSync(file, configText(`[{port: ${a}, workers: 0}]`));
  const outcome = await sup.reload();
  t.equal(outcome.ok, false);
  t.match(outcome.error, 'services[0].workers: 0 is out of range');
  t.notOk(
    workers[0]?.received.some((m) => m.type === 'config'),
    'the worker heard no config',
  );
  t.equal(workers.length, 1, 'and none was started');
});

t.test('stop: workers drain until the deadline; one that does not exit is killed after the grace', async (t) => {
  const [a, b] = await freePorts(2);
  // The second port's worker ignores drain, as a hung worker would.
  const { sup, workers, portOf } = await supervisor(t, configText(`[{port: ${a}}, {port: ${b}}]`).replace('drain: 2s', 'drain: 0'), (port) =>
    port === b ? (w, m) => (m.type === 'listen' ? w.reply({ type: 'listening', dataPlane: 'js', fallback: null }) : undefined) : healthy,
  );
  await sup.start();
  const before = Date.now();
  await sup.stop();
  const took = Date.now() - before;
  const [good, hung] = [workers.find((w) => portOf(w) === a), workers.find((w) => portOf(w) === b)] as FakeWorker[];
  t.match(good?.received.at(-1), { type: 'drain' });
  const deadline = (good?.received.at(-1) as { deadline: number }).deadline;
  t.ok(deadline >= before && deadline <= before + 100, `the deadline is now plus drain (0): ${deadline - before} ms`);
  t.same(good?.signals, [], 'the worker that drained was not signalled');
  t.same(hung?.signals, ['SIGKILL'], 'the hung one was killed');
  t.ok(took >= 5000, `after drain + 5 s of grace (${took} ms)`);
});
