import t, { type Test } from 'tap';
import { DEFAULTS, type LimitsConfig } from '../../src/config/types.js';
import { Admission, type Ticket } from '../../src/policy/limits.js';
import { v4, v6 } from '../fixtures/addresses.js';

const limits = (overrides: Partial<LimitsConfig>): LimitsConfig => ({ ...DEFAULTS.limits, newConnectionsPerSecond: 0, ...overrides });
const BACKEND = v4('198.18.0.2');

function admission(t: Test, l: LimitsConfig): Admission {
  const a = new Admission(l);
  t.teardown(() => a.close());
  return a;
}

function take(a: Admission, source: string, backend = BACKEND, now = 0): Ticket {
  const ticket = a.admit(v6(source), backend, now);
  if (typeof ticket === 'string') throw new Error(`unexpectedly refused: ${ticket}`);
  return ticket;
}

t.test('connections per worker', async (t) => {
  const a = admission(t, limits({ connectionsPerWorker: 2 }));
  const one = take(a, '2001:db8:1::1');
  take(a, '2001:db8:2::1');
  t.equal(a.admit(v6('2001:db8:3::1'), BACKEND, 0), 'connections per worker');
  a.release(one);
  t.type(a.admit(v6('2001:db8:3::1'), BACKEND, 0), 'object', 'a released slot is free again');
});

t.test('connections per source count the whole /64 by default', async (t) => {
  const a = admission(t, limits({ connectionsPerSource: 2 }));
  take(a, '2001:db8:1::1');
  take(a, '2001:db8:1::ffff:2'); // same /64, another address
  t.equal(a.admit(v6('2001:db8:1:0:1:2:3:4'), BACKEND, 0), 'connections per source');
  t.type(a.admit(v6('2001:db8:1:1::1'), BACKEND, 0), 'object', 'the next /64 is another source');
});

t.test('sourcePrefixLength groups differently', async (t) => {
  const a = admission(t, limits({ connectionsPerSource: 1, sourcePrefixLength: 128 }));
  take(a, '2001:db8:1::1');
  t.type(a.admit(v6('2001:db8:1::2'), BACKEND, 0), 'object', 'per address at /128');
  t.equal(a.admit(v6('2001:db8:1::1'), BACKEND, 0), 'connections per source');
  const wide = admission(t, limits({ connectionsPerSource: 1, sourcePrefixLength: 48 }));
  take(wide, '2001:db8:1:1::1');
  t.equal(wide.admit(v6('2001:db8:1:ffff::1'), BACKEND, 0), 'connections per source', 'one /48');
});

t.test('pending connects, in all and per source, free up once established', async (t) => {
  const a = admission(t, limits({ pendingConnects: 3, pendingConnectsPerSource: 2 }));
  const first = take(a, '2001:db8:1::1');
  take(a, '2001:db8:1::2');
  t.equal(a.admit(v6('2001:db8:1::3'), BACKEND, 0), 'pending connects per source');
  take(a, '2001:db8:2::1');
  t.equal(a.admit(v6('2001:db8:3::1'), BACKEND, 0), 'pending connects');
  a.established(first);
  a.established(first); // twice is harmless
  t.type(a.admit(v6('2001:db8:1::3'), BACKEND, 0), 'object', 'an established connection is not pending');
  t.equal(a.connections, 4);
});

t.test('connections per backend, from all sources', async (t) => {
  const a = admission(t, limits({ connectionsPerBackend: 2 }));
  const one = take(a, '2001:db8:1::1');
  take(a, '2001:db8:2::1');
  t.equal(a.admit(v6('2001:db8:3::1'), BACKEND, 0), 'connections per backend');
  t.type(a.admit(v6('2001:db8:3::1'), v4('198.18.0.3'), 0), 'object', 'another backend is fine');
  a.release(one);
  t.type(a.admit(v6('2001:db8:3::1'), BACKEND, 0), 'object');
});

t.test('new connections per source: a bucket of two seconds, refilled over time', async (t) => {
  const a = admission(t, limits({ newConnectionsPerSecond: 5 }));
  let admitted = 0;
  for (let i = 0; i < 20; i++) {
    const ticket = a.admit(v6('2001:db8:1::1'), BACKEND, 0);
    if (typeof ticket === 'string') t.equal(ticket, 'new connections per source');
    else {
      admitted += 1;
      a.release(ticket);
    }
  }
  t.equal(admitted, 10, 'a burst of 2 s worth at once');
  t.type(a.admit(v6('2001:db8:2::1'), BACKEND, 0), 'object', 'another source has its own bucket');
  t.equal(a.admit(v6('2001:db8:1::1'), BACKEND, 100), 'new connections per source', '100 ms refill half a token');
  t.type(a.admit(v6('2001:db8:1::1'), BACKEND, 200), 'object', '200 ms refill one token');
});

t.test('a released source is forgotten only once its bucket is full again', async (t) => {
  const a = admission(t, limits({ newConnectionsPerSecond: 10 }));
  for (let i = 0; i < 20; i++) a.release(take(a, '2001:db8:1::1'));
  t.equal(a.admit(v6('2001:db8:1::1'), BACKEND, 0), 'new connections per source');
  a.sweep(1000);
  t.equal(a.trackedSources, 1, 'kept: forgetting it now would hand the flood a fresh bucket');
  t.equal(a.admit(v6('2001:db8:1::1'), BACKEND, 0), 'new connections per source');
  a.sweep(2_000);
  t.equal(a.trackedSources, 0, 'forgotten once full');
  const held = admission(t, limits({}));
  take(held, '2001:db8:9::1');
  held.sweep(1e9);
  t.equal(held.trackedSources, 1, 'a source holding a connection is never forgotten');
});

t.test('reconfigure applies new limits to new connections', async (t) => {
  const a = admission(t, limits({ connectionsPerSource: 1 }));
  const held = take(a, '2001:db8:1::1');
  a.reconfigure(limits({ connectionsPerSource: 2 }));
  take(a, '2001:db8:1::2');
  t.equal(a.admit(v6('2001:db8:1::3'), BACKEND, 0), 'connections per source');
  a.reconfigure(limits({ connectionsPerSource: 2, sourcePrefixLength: 128 }));
  t.type(a.admit(v6('2001:db8:1::3'), BACKEND, 0), 'object', 'grouping per address now');
  a.release(held);
  t.equal(a.connections, 2);
});

t.test('the descriptor cap comes first and can change at any time', async (t) => {
  const a = admission(t, limits({}));
  a.setDescriptorCap(1);
  const one = take(a, '2001:db8:1::1');
  t.equal(a.admit(v6('2001:db8:2::1'), BACKEND, 0), 'descriptors');
  a.setDescriptorCap(-5);
  t.equal(a.admit(v6('2001:db8:2::1'), BACKEND, 0), 'descriptors', 'a negative budget admits nothing');
  a.setDescriptorCap(2);
  take(a, '2001:db8:2::1');
  a.release(one);
  t.equal(a.connections, 1);
});

t.test('a changed rate starts every source with a full bucket of the new size', async (t) => {
  const a = admission(t, limits({ newConnectionsPerSecond: 0 }));
  a.release(take(a, '2001:db8:1::1')); // the source is remembered, its bucket sized for no limit
  a.reconfigure(limits({ newConnectionsPerSecond: 3 }), 0);
  let admitted = 0;
  for (let i = 0; i < 10; i++) {
    const ticket = a.admit(v6('2001:db8:1::1'), BACKEND, 0);
    if (typeof ticket !== 'string') admitted += 1;
  }
  t.equal(admitted, 6, 'two seconds of the new rate');
});
