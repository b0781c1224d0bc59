// Faults in the two-translator network of test/netns/anycast.ts: a port of xl1 whose worker
// keeps exiting, BIRD on xl2 restarted, BIRD on xl2 missing, and xl2 falling silent as a failed
// host does (its BIRD frozen), detected by the router through BFD and, without BFD, through the
// BGP hold time. Each case asserts the router's kernel table and what clients saw, and prints
// its convergence figures.
import { writeFile } from 'node:fs/promises';
import t from 'tap';
import { requireBird } from '../fixtures/bird.js';
import { crashLoop, daemonStatus, runCli, startDaemon } from '../fixtures/daemon.js';
import { ip } from '../fixtures/netns.js';
import { ANYCAST, ANYCAST_PORT, echoThrough, LINKS, shippedConfig, startAnycast, translatorDaemonConfig, type Translator } from '../fixtures/anycast.js';

requireBird();

const DAEMON = { timeouts: { drain: '5s' } };
const any = await startAnycast(t, DAEMON);
const { net, watch, daemons, birds, router } = any;
const root = t;

/** `n` echoed connections from c6: how many came back intact, and how many each translator relayed. */
async function connections(n: number): Promise<{ intact: number; by: Partial<Record<Translator, number>> }> {
  const { summary, by } = await echoThrough(any, n);
  return { intact: Number(summary.intact), by };
}

t.test('a port of xl1 whose worker keeps exiting: xl1 withdraws, and announces again once it runs', async (t) => {
  const xl1 = daemons.xl1;
  await crashLoop(xl1, ANYCAST_PORT);
  const failedAt = Date.now();
  const down = await watch.until(['xl2'], 5000, failedAt);
  t.comment(`the router lost xl1 ${down} ms after its worker's last exit of a crash loop`);
  t.match((await daemonStatus(net, xl1)).announce, { announced: false, reason: `port ${ANYCAST_PORT} failed: its worker keeps exiting` });
  const meanwhile = await connections(20);
  t.same(meanwhile, { intact: 20, by: { xl1: 0, xl2: 20 } }, 'meanwhile new connections are relayed by xl2');
  // The worker is restarted after its backoff and, once it has run 10 s, the port is healthy.
  const up = await watch.until(['xl1', 'xl2'], 30_000, failedAt);
  t.comment(`the router had xl1 again ${up} ms after the last exit (the worker's 10 s of health, and the restart backoff)`);
  t.match((await daemonStatus(net, xl1)).announce, { announced: true, reason: 'every listener accepts' });
});

t.test('BIRD on xl2 restarted: the announcement comes back without touching faithd6', async (t) => {
  const xl2 = daemons.xl2;
  const mark = xl2.proc.mark();
  const stoppedAt = Date.now();
  await birds.xl2.stop();
  const down = await watch.until(['xl1'], 5000, stoppedAt);
  const restartedAt = Date.now();
  await birds.xl2.restart();
  t.equal(await birds.xl2.state('faithd6'), 'down', 'the restarted BIRD starts with the protocol disabled, as translator.conf says');
  const up = await watch.until(['xl1', 'xl2'], 30_000, restartedAt);
  t.comment(
    `BIRD on xl2 stopped: the router lost xl2 in ${down} ms; started again: the router had xl2 again ${up} ms later (BGP's 5 s connect delay; faithd6 re-asserts every 3 s)`,
  );
  t.equal(xl2.proc.exit, null, 'faithd6 on xl2 ran on');
  t.same(
    xl2.proc.filter((l) => l.msg === 'worker exited', mark),
    [],
    'its workers too',
  );
  t.ok(xl2.proc.filter((l) => l.msg === 'BIRD protocol enabled', mark).length >= 1, 'faithd6 enabled the protocol in the new BIRD');
  const after = await connections(40);
  t.equal(after.intact, 40);
  t.ok((after.by.xl2 ?? 0) > 0 && (after.by.xl1 ?? 0) > 0, `both relay again (${JSON.stringify(after.by)})`);
});

t.test('BIRD missing on xl2: faithd6 starts and serves, and status and doctor say why it does not announce', async (t) => {
  await birds.xl2.stop();
  t.comment(`BIRD on xl2 gone: the router lost xl2 in ${await watch.until(['xl1'], 5000)} ms`);
  // A fresh start with no BIRD at all, as on a host where it is not running.
  await runCli(net, ['stop', '-c', daemons.xl2.configFile], 30_000, false, 'xl2');
  daemons.xl2 = await startDaemon(root, net, translatorDaemonConfig(birds.xl2, DAEMON), 15_000, 'xl2');
  const xl2 = daemons.xl2;
  await xl2.proc.waitFor((l) => l.msg === 'cannot tell BIRD; the translator goes on serving', { timeout: 10_000 });
  const status = await daemonStatus(net, xl2);
  t.match(status.announce, { announced: false, error: new RegExp(`(no BIRD control socket at|nothing answers on) ${birds.xl2.socket}`) });
  const text = await runCli(net, ['status', '-c', xl2.configFile], 15_000, false, 'xl2');
  t.match(text.stdout, /announced: no \(every listener accepts\)/, `faithd6 status: ${text.stdout}`);
  const doctor = await runCli(net, ['doctor', '-c', xl2.configFile], 30_000, false, 'xl2');
  t.equal(doctor.code, 1);
  t.match(doctor.stdout, `✗ BIRD protocol faithd6 on ${birds.xl2.socket}: BIRD does not answer: `);
  t.same(await watch.until(['xl1'], 100).then(() => 'xl1'), 'xl1', 'the router sends nothing to xl2');
  // It serves: a route on the router for one translated address through xl2 proves it.
  const pinned = `${ANYCAST.server6}/128`;
  await ip(['-n', net.ns.r6, '-6', 'route', 'add', pinned, 'via', LINKS.xl2.self6, 'dev', 'to-xl2']);
  try {
    t.same(await connections(20), { intact: 20, by: { xl1: 0, xl2: 20 } }, 'faithd6 on xl2 relays what reaches it');
  } finally {
    await ip(['-n', net.ns.r6, '-6', 'route', 'del', pinned]);
  }
  await birds.xl2.restart();
  t.comment(`BIRD on xl2 back: the router had xl2 again ${await watch.until(['xl1', 'xl2'], 30_000)} ms after BIRD answered`);
});

t.test('xl2 falls silent (its BIRD frozen): the router drops it after BFD’s 300 ms, and without BFD after the hold time', async (t) => {
  const silence = async (what: string): Promise<number> => {
    const frozenAt = Date.now();
    birds.xl2.proc.signal('SIGSTOP');
    try {
      return await watch.until(['xl1'], 15_000, frozenAt);
    } finally {
      birds.xl2.proc.signal('SIGCONT');
      // After a failure each end holds the session down for BGP's error wait time (60 s at
      // first); an operator who knows the host is well takes it back at once, as here.
      await router.birdc('restart', 'translator2');
      await birds.xl2.birdc('restart', 'uplink');
      const back = await watch.until(['xl1', 'xl2'], 30_000).catch(async (err: Error) => {
        throw new Error(`${err.message}\n${await router.birdc('show', 'protocols', 'all', 'translator2')}`);
      });
      t.comment(`${what}: thawed, and the session restarted on both ends (birdc restart): xl2 back ${back} ms later`);
    }
  };
  const withBfd = await silence('with BFD');
  t.comment(`with BFD (100 ms × 3, as shipped): the router dropped the silent xl2 after ${withBfd} ms`);
  t.ok(withBfd < 2000, `with BFD, well inside the 6 s hold time (${withBfd} ms)`);
  t.equal(daemons.xl2.proc.exit, null, 'faithd6 on xl2 runs on while its BIRD does not answer');

  // The same router without BFD: only the BGP hold time (6 s) notices.
  await writeFile(router.configFile, await shippedConfig('router.conf', [['bfd on;', 'bfd off;']]));
  const reconfigured = await router.birdc('configure');
  t.match(reconfigured, /Reconfigur/, `birdc configure: ${reconfigured.trim()}`);
  // The changed sessions restart with a notification, which each end takes as an error (and so
  // the error wait time): restart them on both ends to have them back at once.
  for (const name of ['translator1', 'translator2']) await router.birdc('restart', name);
  for (const xl of ['xl1', 'xl2'] as const) await birds[xl].birdc('restart', 'uplink');
  await watch.until(['xl1', 'xl2'], 30_000).catch(async (err: Error) => {
    throw new Error(`${err.message}\n${await router.birdc('show', 'protocols')}`);
  });
  const withoutBfd = await silence('without BFD');
  t.comment(`without BFD: the router dropped the silent xl2 after ${withoutBfd} ms (hold time 6 s)`);
  t.ok(withoutBfd >= 3000, `without BFD, the hold time decides (${withoutBfd} ms)`);
});
