// The announcement through a real BIRD 2 on the translator's host: faithd6 enables BIRD's
// static protocol once every listener accepts, brings a restarted BIRD (whose config says
// `disabled yes`) back to that, goes on serving while BIRD cannot be reached and says so in
// `status`, withdraws while a port's worker keeps failing and announces again once it runs, and
// on stop withdraws first and accepts through the grace period before draining. Convergence
// figures (ms from the action to BIRD's state) are printed as TAP comments.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import t from 'tap';
import { ADDR, buildNetwork, isDone, PREFIX, translate } from '../fixtures/netns.js';
import { crashLoop, daemonStatus, runCli, startDaemon } from '../fixtures/daemon.js';
import { requireBird, startBird } from '../fixtures/bird.js';

requireBird();

const PORT = 5999;
const DST6 = translate(ADDR.server4);
const PROTOCOL = 'faithd6';
const GRACE_MS = 1500;

const net = await buildNetwork(t);
const bird = await startBird(
  t,
  net,
  'xl',
  `router id ${ADDR.xl4};
protocol device {}
protocol static ${PROTOCOL} { disabled yes; ipv6; route ${PREFIX} blackhole; }
`,
);
const server = net.peer('s4', ['server', 'echo', '--host', ADDR.server4, '--port', String(PORT), '--timeout', '120']);
await server.waitFor((l) => l.event === 'listening', { timeout: 5000 });
const daemon = await startDaemon(t, net, {
  services: [{ port: PORT }],
  announce: { birdSocket: bird.socket, protocol: PROTOCOL, withdrawGrace: `${GRACE_MS}ms` },
});

/** Polls BIRD until the protocol is in `state`; the ms it took. */
async function until(state: 'up' | 'down', bound: number): Promise<number> {
  const started = Date.now();
  for (;;) {
    const now = await bird.state(PROTOCOL).catch(() => undefined);
    if (now === state) return Date.now() - started;
    if (Date.now() - started > bound) throw new Error(`BIRD's ${PROTOCOL} not ${state} within ${bound} ms (it is ${String(now)})`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** One echoed connection from c6 through the translator: whether it came back intact. */
async function relayed(): Promise<boolean> {
  const client = net.peer('c6', ['client', 'echo', '1000', '--host', DST6, '--port', String(PORT), '--timeout', '10']);
  const done = await client.waitFor(isDone(), { timeout: 15_000 });
  return done.end === 'eof' && done.intact === true;
}

t.test('announced once ready: the protocol is up, and status says why', async (t) => {
  t.equal(await bird.state(PROTOCOL), 'up', 'enabled by the time faithd6 logged ready');
  t.ok(
    daemon.proc.lines.findIndex((l) => l.msg === 'ready') < daemon.proc.lines.findIndex((l) => l.msg === 'BIRD protocol enabled'),
    'after the ready line: once every listener accepts',
  );
  const status = await daemonStatus(net, daemon);
  t.match(status.announce, { announced: true, reason: 'every listener accepts', protocol: PROTOCOL, socket: bird.socket, error: null });
  t.match(
    (await runCli(net, ['doctor', '-c', daemon.configFile], 30_000, false)).stdout,
    `✓ BIRD protocol ${PROTOCOL} on ${bird.socket}: a static protocol, up, announcing ${PREFIX}`,
    'doctor: BIRD answers, the protocol is a static one, and its routes are the prefixes',
  );
});

t.test('BIRD stopped: faithd6 serves on, and status says why it does not announce; BIRD restarted: announced again', async (t) => {
  const mark = daemon.proc.mark();
  await bird.stop();
  await daemon.proc.waitFor((l) => l.msg === 'cannot tell BIRD; the translator goes on serving', { timeout: 10_000, from: mark });
  t.ok(await relayed(), 'a connection is relayed while BIRD is gone');
  const status = await daemonStatus(net, daemon);
  t.match(status.announce, { announced: false, error: new RegExp(`(no BIRD control socket at|nothing answers on) ${bird.socket}`) });
  t.match(
    (await runCli(net, ['doctor', '-c', daemon.configFile], 30_000, false)).stdout,
    `✗ BIRD protocol ${PROTOCOL} on ${bird.socket}: BIRD does not answer: `,
    'doctor says so',
  );
  const restarted = daemon.proc.mark();
  await bird.restart();
  const ms = await until('up', 10_000);
  t.comment(`a restarted BIRD was enabled again ${ms} ms after it answered (re-asserted every 3 s)`);
  // BIRD answered "enabled", not "already enabled": the restarted BIRD had the protocol disabled,
  // as its config says, and faithd6 enabled it. (Asking BIRD for the state right after the restart
  // raced the re-assertion on a loaded machine.)
  const enabled = await daemon.proc.waitFor((l) => l.msg === 'BIRD protocol enabled', { timeout: 5000, from: restarted });
  t.equal(enabled.protocol, PROTOCOL, 'faithd6 enabled the protocol the restarted BIRD started with disabled');
  t.match((await daemonStatus(net, daemon)).announce, { announced: true, error: null });
});

t.test('a port whose worker keeps exiting withdraws the prefixes; running again, it announces them', async (t) => {
  const mark = daemon.proc.mark();
  // Three quick exits in a row make a failed port (the restart backoff's count).
  await crashLoop(daemon, PORT);
  const killed = Date.now();
  const down = await until('down', 5000);
  t.comment(`withdrawn ${down} ms after the last exit`);
  const withdrawn = await daemon.proc.waitFor((l) => l.msg === 'withdrawing', { timeout: 1000, from: mark });
  t.equal(withdrawn.reason, `port ${PORT} failed: its worker keeps exiting`);
  // The worker restarts after its backoff and, once it has run 10 s, ends the run of failures.
  const up = await until('up', 20_000);
  t.comment(`announced again ${Date.now() - killed} ms after the last exit (${up} ms after the withdrawal: the worker's 10 s of health)`);
  t.ok(await relayed());
});

t.test('stop: withdrawn first, then accepting through the grace period, then drained', async (t) => {
  const mark = daemon.proc.mark();
  const stopped = daemon.stop(30_000);
  const down = await until('down', 5000);
  const withdrawnAt = Date.now();
  t.comment(`withdrawn ${down} ms after SIGTERM`);
  t.ok(await relayed(), 'a connection made after the withdrawal, within the grace period, is relayed');
  const exit = await stopped.catch((err: Error) => {
    throw new Error(`${err.message}\nits last lines: ${JSON.stringify(daemon.proc.lines.slice(-12))}`);
  });
  t.equal(exit.code, 0);
  const lines = daemon.proc.lines.slice(mark);
  const grace = lines.find((l) => String(l.msg).startsWith('withdrawn; accepting'));
  const routeGone = lines.find((l) => l.msg === 'local route removed');
  t.ok(grace !== undefined && routeGone !== undefined, 'the grace period, then the drain and the route removed');
  t.ok(Date.parse(String(routeGone?.time)) - Date.parse(String(grace?.time)) >= GRACE_MS, `the drain began ${GRACE_MS} ms or more after the withdrawal`);
  t.ok(Date.now() - withdrawnAt < 30_000);
  t.equal(await bird.state(PROTOCOL), 'down', 'and it stays withdrawn');
});

t.test('faithd6 withdraw (the unit runs it after any stop): disables the protocol, idempotent, and says when BIRD is gone', async (t) => {
  // As a crashed daemon leaves it.
  await bird.birdc('enable', PROTOCOL);
  t.equal(await bird.state(PROTOCOL), 'up');
  const first = await runCli(net, ['withdraw', '-c', daemon.configFile]);
  t.equal(first.code, 0, first.stderr);
  t.equal(first.stdout, `withdrawn: BIRD protocol ${PROTOCOL} disabled\n`);
  t.equal(await bird.state(PROTOCOL), 'down');
  const again = await runCli(net, ['withdraw', '-c', daemon.configFile]);
  t.equal(again.code, 0, 'a second time: nothing to do, and no failure');
  t.equal(again.stdout, `BIRD protocol ${PROTOCOL} was already disabled\n`);
  await bird.stop();
  const gone = await runCli(net, ['withdraw', '-c', daemon.configFile]);
  t.equal(gone.code, 1);
  t.match(gone.stderr, new RegExp(`^faithd6: (no BIRD control socket at|nothing answers on) ${bird.socket}`));
});

t.test('doctor: a protocol BIRD does not have, and one that is not static', async (t) => {
  await bird.restart();
  for (const [protocol, detail] of [
    ['nosuch', 'BIRD has no protocol nosuch'],
    ['device1', 'device1 is a Device protocol, not a static one'],
  ] as const) {
    const text = (await readFile(daemon.configFile, 'utf8')).replace(`protocol: ${PROTOCOL}`, `protocol: ${protocol}`);
    const file = join(await mkdtemp(join(tmpdir(), 'faithd6-doctor-')), 'faithd6.yaml');
    await writeFile(file, text, { mode: 0o644 });
    const r = await runCli(net, ['doctor', '-c', file], 30_000, false);
    t.equal(r.code, 1, protocol);
    t.match(r.stdout, `✗ BIRD protocol ${protocol} on ${bird.socket}: ${detail}`);
    t.match(r.stdout, `protocol static ${protocol} { disabled yes; ipv6; route ${PREFIX} blackhole; }`, 'and the fix shows the protocol to add');
    await rm(dirname(file), { recursive: true });
  }
});
