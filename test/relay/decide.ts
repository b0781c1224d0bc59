// The accept decision as a pure function: translate the dialled address, apply the rules.
// No socket and no root: the addresses an accepted socket would report are enough.
import t from 'tap';
import { AccessPolicy } from '../../src/policy/access.js';
import { TranslationPrefix } from '../../src/net/address.js';
import { decide, type Translator } from '../../src/relay/decide.js';
import { v4, v6 } from '../fixtures/addresses.js';

const PREFIXES = [TranslationPrefix.parse('2001:db8:5999::/96'), TranslationPrefix.parse('64:ff9b:1::/96')];
const policy = new AccessPolicy(
  [
    { action: 'deny', from: ['2001:db8:bad::/48'], to: ['0.0.0.0/0'], ports: [] },
    { action: 'permit', from: ['2001:db8::/32'], to: ['198.18.0.0/15'], ports: [5999] },
  ],
  PREFIXES,
  { own: [], broadcasts: [] },
);
const SERVICE: Translator = { port: 5999, backendPort: 6000, prefixes: PREFIXES, policy };

t.test('a permitted connection names its backend, the backend port and the client', async (t) => {
  const d = decide(SERVICE, '2001:db8:5999::c612:2', '2001:db8:c6::2', 40000);
  t.same(d, {
    relay: true,
    source: v6('2001:db8:c6::2'),
    ipv4: v4('198.18.0.2'),
    backendHost: '198.18.0.2',
    backendPort: 6000,
    client: '[2001:db8:c6::2]:40000',
    dst: '2001:db8:5999::c612:2',
    backend: '198.18.0.2:6000',
    clientAddress: '2001:db8:c6::2',
    clientPort: 40000,
    dialled: v6('2001:db8:5999::c612:2'),
    dialledPort: 5999,
  });
  t.match(decide(SERVICE, '2001:db8:5999::c612:2', '2001:db8:c6::2', 40000, 6001), { dialledPort: 6001 }, 'the port the socket was dialled on');
  const other = decide(SERVICE, '64:ff9b:1::c613:102', '2001:db8:c6::2', 40001);
  t.match(other, { relay: true, backend: '198.19.1.2:6000' }, 'any configured prefix translates');
});

t.test('an address outside every prefix is not a translation', async (t) => {
  for (const dialled of ['2001:db8:c6::1', '2001:db8:5998::c612:2', '::1', undefined]) {
    const d = decide(SERVICE, dialled, '2001:db8:c6::2', 40000);
    t.same(d, { relay: false, end: 'not translated', client: '[2001:db8:c6::2]:40000', fields: { dst: dialled } }, String(dialled));
  }
});

t.test('the rules decide, first match first, and say which rule', async (t) => {
  t.match(decide(SERVICE, '2001:db8:5999::c612:2', '2001:db8:bad::7', 1), {
    relay: false,
    end: 'denied',
    fields: { dst: '2001:db8:5999::c612:2', backend: '198.18.0.2:6000', reason: 'denied by rule', rule: 1 },
  });
  t.match(
    decide(SERVICE, '2001:db8:5999::cb00:7107', '2001:db8:c6::2', 1),
    {
      relay: false,
      end: 'denied',
      fields: { backend: '203.0.113.7:6000', reason: 'no matching rule', rule: undefined },
    },
    'a destination no rule permits',
  );
  const otherPort: Translator = { ...SERVICE, port: 554 };
  t.match(
    decide(otherPort, '2001:db8:5999::c612:2', '2001:db8:c6::2', 1),
    { relay: false, fields: { reason: 'no matching rule' } },
    'rule ports are service ports',
  );
  t.match(decide(SERVICE, '2001:db8:5999::7f00:1', '2001:db8:c6::2', 1), { relay: false, fields: { reason: 'special-purpose destination' } });
});

t.test('a source that is not an IPv6 address is denied, never relayed', async (t) => {
  for (const remote of ['198.18.0.9', 'garbage', undefined]) {
    const d = decide(SERVICE, '2001:db8:5999::c612:2', remote, undefined);
    t.match(d, { relay: false, end: 'denied', fields: { reason: 'unparsable source address' } }, String(remote));
  }
  t.equal(decide(SERVICE, '2001:db8:5999::c612:2', undefined, undefined).client, '[?]:?', 'an unknown peer still gets a log name');
});
