// The reset and FIN races, repeated: a reset that arrives with the last bytes must reach the
// far side as a reset, never as a clean end, and a FIN after the same bytes as a FIN with every
// byte. Each case runs FAITHD6_RACE_ITERATIONS times (200 unless set), bounded in time, through
// the real daemon in the three-host network; the peers are test/fixtures/race.py.
import t, { type Test } from 'tap';
import { ADDR, buildNetwork, translate } from '../fixtures/netns.js';
import { startDaemon } from '../fixtures/daemon.js';
import { fileURLToPath } from 'node:url';

const PORT = 5999;
const RACE = fileURLToPath(new URL('../fixtures/race.py', import.meta.url));
const ITERATIONS = Number(process.env.FAITHD6_RACE_ITERATIONS ?? 200);
/** A bound on each case, far above what 200 iterations take (about 1 s for most). */
const CASE_SECONDS = 60;

const SIZES = [1, 1000, 64 * 1024 - 1, 64 * 1024, 64 * 1024 + 1, 1024 * 1024];
const DIRS = ['s2c', 'c2s'] as const;
const RESET_MODES = ['after', 'slow', 'tick', 'half'] as const;
const FIN_MODES = ['after', 'slow', 'half'] as const;

interface Case {
  name: string;
  dir: (typeof DIRS)[number];
  size: number;
  end: 'reset' | 'fin';
  mode: string;
}

interface CaseResult {
  name: string;
  iterations: number;
  failures: number;
  outcomes: Record<string, number>;
  examples: string[];
  seconds: number;
}

const WHO = { s2c: 'server→client', c2s: 'client→server' };

function cases(end: 'reset' | 'fin', modes: readonly string[]): Case[] {
  return DIRS.flatMap((dir) => modes.flatMap((mode) => SIZES.map((size) => ({ name: `${end} ${WHO[dir]} ${mode} ${size} B`, dir, size, end, mode }))));
}

// 16,800 iterations take about 65 s here, 71 s beside the rest of the suite: tap's 120 s per
// file is too close. Each case is bounded by CASE_SECONDS on its own.
t.setTimeout(10 * 60_000);
const net = await buildNetwork(t);
// Hundreds of connections a second from one client: the new-connection rate limit is lifted.
const daemon = await startDaemon(t, net, { services: [{ port: PORT }], timeouts: { connect: '2s' }, limits: { newConnectionsPerSecond: 0 } });
t.teardown(() => daemon.stop());

async function race(t: Test, list: Case[]): Promise<void> {
  const proc = net.spawn(
    'c6',
    'python3',
    [
      RACE,
      '--client-ns',
      `/run/netns/${net.ns.c6}`,
      '--server-ns',
      `/run/netns/${net.ns.s4}`,
      '--connect',
      translate(ADDR.server4),
      '--listen',
      ADDR.server4,
      '--port',
      String(PORT),
      '--iterations',
      String(ITERATIONS),
      '--seconds',
      String(CASE_SECONDS),
      JSON.stringify(list),
    ],
    { label: 'race.py' },
  );
  t.teardown(() => proc.stop());
  const bound = list.length * (CASE_SECONDS + 15) * 1000;
  await proc.waitFor((l) => l.event === 'done', { timeout: bound, what: 'the end of every case' });
  let total = 0;
  let failed = 0;
  for (const c of list) {
    const r = proc.lines.find((l) => l.event === 'case' && l.name === c.name) as unknown as CaseResult | undefined;
    if (r === undefined) {
      t.fail(`${c.name}: no result`);
      continue;
    }
    total += r.iterations;
    failed += r.failures;
    const outcomes = Object.entries(r.outcomes)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    t.equal(r.failures, 0, `${c.name}: ${r.failures} failures in ${r.iterations} iterations (${outcomes}; ${r.seconds} s)`, { examples: r.examples });
    t.ok(r.iterations >= ITERATIONS, `${c.name}: ran ${r.iterations} of ${ITERATIONS} iterations within ${CASE_SECONDS} s`);
  }
  t.comment(`${list[0]?.end ?? ''} races: ${failed} failures in ${total} iterations of ${list.length} cases`);
}

t.test('a reset after the last bytes reaches the far side as a reset', (t) => race(t, cases('reset', RESET_MODES)));
t.test('a FIN after the same bytes reaches the far side as a FIN, every byte intact', (t) => race(t, cases('fin', FIN_MODES)));
