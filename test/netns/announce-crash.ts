// Fail-closed: a supervisor killed with SIGKILL cannot withdraw, so its workers do. Each holds a
// connection to BIRD's control socket that the supervisor opened and passed to it (a worker runs
// unprivileged); when the IPC channel goes, every worker sends `disable` on it, then drains and
// exits. The convergence figure (ms from the SIGKILL to BIRD's protocol down) is printed.
import t from 'tap';
import { ADDR, buildNetwork, PREFIX } from '../fixtures/netns.js';
import { startDaemon } from '../fixtures/daemon.js';
import { requireBird, startBird } from '../fixtures/bird.js';

requireBird();

const PROTOCOL = 'faithd6';
const net = await buildNetwork(t);
const bird = await startBird(
  t,
  net,
  'xl',
  `router id ${ADDR.xl4};\nprotocol device {}\nprotocol static ${PROTOCOL} { disabled yes; ipv6; route ${PREFIX} blackhole; }\n`,
);
const daemon = await startDaemon(t, net, {
  services: [{ port: 5999, workers: 2 }, { port: 6000 }],
  announce: { birdSocket: bird.socket, protocol: PROTOCOL },
});

/** The workers' pids, from their `worker started` lines. */
const workers = (): number[] => daemon.proc.filter((l) => l.msg === 'worker started').map((l) => Number(l.worker));

t.test('supervisor SIGKILLed: its workers withdraw, then exit', async (t) => {
  t.equal(await bird.state(PROTOCOL), 'up', 'announced');
  // The links are handed out after BIRD answered the first enable: wait until BIRD sees them.
  await bird.sessions(3);
  const pids = workers();
  t.equal(pids.length, 3);
  const killed = Date.now();
  process.kill(daemon.proc.pid, 'SIGKILL');
  for (;;) {
    if ((await bird.state(PROTOCOL)) === 'down') break;
    if (Date.now() - killed > 5000) throw new Error('not withdrawn within 5 s');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const ms = Date.now() - killed;
  t.comment(`withdrawn by the workers ${ms} ms after the supervisor's SIGKILL`);
  t.ok(ms < 2000, `within 2 s (${ms} ms)`);
  for (const pid of pids) {
    for (let i = 0; ; i++) {
      try {
        process.kill(pid, 0);
      } catch {
        break;
      }
      if (i === 200) throw new Error(`worker ${pid} did not exit`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
  t.pass('every worker exited');
  const lines = daemon.proc.lines.filter((l) => l.msg === 'supervisor gone: withdrawn');
  t.equal(lines.length, 3, 'each worker withdrew');
  t.equal(lines.filter((l) => l.bird === `0009-${PROTOCOL}: disabled`).length, 1, 'BIRD disabled it once; the others found it done');
  t.equal(lines.filter((l) => l.bird === `0008-${PROTOCOL}: already disabled`).length, 2);
});
