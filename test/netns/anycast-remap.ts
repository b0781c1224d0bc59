// What a change of the router's next hops does to established connections, repeated. Each round
// runs ten paced echo streams (4 MiB each, paced to 1 s) through the translators and changes the
// set of hosts that announce the prefix mid-stream:
// - a host leaves (xl1's BIRD withdraws): the router moves xl1's flows to xl2, which does not know
//   them and resets them; xl2's own flows must not notice;
// - a host joins (xl1 announces again): the router's hash-threshold ECMP divides the flows anew, so
//   some of xl2's flows move to xl1 and are reset there.
// Every stream must end whole or visibly reset, never cut short with what looks like a clean end.
// (A Node client can see such a reset as an end of stream, libuv's EPOLLHUP shortcut:
// test/fixtures/peer.js asks the kernel which it was.) The counts are printed.
import t, { type Test } from 'tap';
import { requireBird } from '../fixtures/bird.js';
import { portOf } from '../fixtures/daemon.js';
import { isDone, type Line } from '../fixtures/netns.js';
import { anycastClient, ANYCAST_PORT, clientPortsOn, startAnycast, type Translator } from '../fixtures/anycast.js';

requireBird();

const ROUNDS = 20;
// The test announces and withdraws through BIRD itself: faithd6 would re-assert its own state.
const { net, watch, birds } = await startAnycast(t, { timeouts: { drain: '5s' } }, { announcedByTest: true });

interface Tally {
  whole: number;
  reset: number;
  resetSeenAsEof: number;
  truncated: number;
}

/** Ten streams; `change` runs once they are under way (at a point that differs per round); their ends. */
async function round(n: number, change: () => Promise<void>): Promise<{ ends: Line[]; before: Record<Translator, Set<number>> }> {
  const c = anycastClient(net, ['echo', '4MiB', '--rate', '4MiB', '--conns', '10', '--timeout', '60']);
  await c.waitForCount((l) => l.event === 'connected', 10, { timeout: 10_000 });
  await new Promise((resolve) => setTimeout(resolve, 200 + ((n * 37) % 400)));
  const before = { xl1: await clientPortsOn(net, 'xl1', ANYCAST_PORT), xl2: await clientPortsOn(net, 'xl2', ANYCAST_PORT) };
  await change();
  await c.waitFor((l) => l.event === 'summary', { timeout: 60_000 });
  return { ends: c.filter(isDone()), before };
}

function tally(t: Test, into: Tally, done: Line, what: string): void {
  if (done.end === 'eof' && done.intact === true) into.whole++;
  else if (done.end === 'eof') {
    into.truncated++;
    t.comment(`${what}: cut short without a reset: ${JSON.stringify(done)}`);
  } else {
    into.reset++;
    if (done.resetAsEof === true) into.resetSeenAsEof++;
  }
}

const empty = (): Tally => ({ whole: 0, reset: 0, resetSeenAsEof: 0, truncated: 0 });
const show = (x: Tally): string =>
  `${x.whole} whole, ${x.reset} visibly reset (${x.resetSeenAsEof} seen by node as an end of stream), ${x.truncated} cut short (failures)`;

t.test(`a host leaves mid-stream, ${ROUNDS} rounds: its flows are reset, the others' untouched`, async (t) => {
  const moved = empty();
  const stayed = empty();
  for (let n = 0; n < ROUNDS; n++) {
    const { ends, before } = await round(n, async () => {
      await birds.xl1.birdc('disable', 'faithd6');
      await watch.until(['xl2'], 5000);
    });
    for (const done of ends) tally(t, before.xl1.has(portOf(done.local)) ? moved : stayed, done, `round ${n}`);
    await birds.xl1.birdc('enable', 'faithd6');
    await watch.until(['xl1', 'xl2'], 5000);
  }
  t.comment(`streams through xl1, the host that left: ${show(moved)}`);
  t.comment(`streams through xl2: ${show(stayed)}`);
  t.ok(moved.whole + moved.reset + moved.truncated >= ROUNDS, 'streams went through xl1');
  t.equal(moved.truncated + stayed.truncated, 0, 'none cut short without a reset');
  t.equal(stayed.whole, stayed.whole + stayed.reset + stayed.truncated, "xl2's streams all whole: the router moved only xl1's flows");
});

t.test(`a host joins mid-stream, ${ROUNDS} rounds: some flows move to it and are reset, none is cut short`, async (t) => {
  const all = empty();
  for (let n = 0; n < ROUNDS; n++) {
    await birds.xl1.birdc('disable', 'faithd6');
    await watch.until(['xl2'], 5000);
    const { ends, before } = await round(n, async () => {
      await birds.xl1.birdc('enable', 'faithd6');
      await watch.until(['xl1', 'xl2'], 5000);
    });
    // (xl2 may hold more: flows of earlier rounds that moved away, dead until its idle timeout.)
    t.ok(
      ends.every((done) => before.xl2.has(portOf(done.local))),
      `round ${n}: all ten streams through xl2 before xl1 joined`,
    );
    for (const done of ends) tally(t, all, done, `round ${n}`);
  }
  t.comment(`streams through xl2 when xl1 joined: ${show(all)}`);
  t.equal(all.truncated, 0, 'none cut short without a reset');
  t.ok(all.reset > 0 && all.whole > 0, 'some moved to xl1 (reset), some stayed on xl2 (whole)');
});
