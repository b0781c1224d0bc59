// parseListeners reads `ss -Hltnp` as iproute2 prints it; these lines are ss's own format.
import t from 'tap';
import { parseListeners } from '../../src/doctor/ports.js';

t.test('every kind of listening address, with and without processes', async (t) => {
  const text = [
    'LISTEN 0      511             [::]:5999            [::]:*    users:(("faithd6: worker",pid=4242,fd=21),("faithd6: worker",pid=4243,fd=21))',
    'LISTEN 0      128                *:22                 *:*    users:(("sshd",pid=700,fd=3))',
    'LISTEN 0      4096   [2001:db8::1]:8080            [::]:*',
    'LISTEN 0      4096   [::ffff:192.0.2.1]:8081       [::]:*',
    'LISTEN 0      4096         0.0.0.0:5999         0.0.0.0:*    users:(("nginx",pid=900,fd=6))',
    'LISTEN 0      4096    [fe80::1]%eth0:9000          [::]:*',
    'LISTEN 0      4096   127.0.0.53%lo:53           0.0.0.0:*    users:(("a \\"quoted\\" name",pid=12,fd=13))',
    '',
    'garbage',
  ].join('\n');
  t.same(parseListeners(text), [
    {
      text: '[::]:5999',
      port: 5999,
      kind: 'any6',
      processes: [
        { name: 'faithd6: worker', pid: 4242 },
        { name: 'faithd6: worker', pid: 4243 },
      ],
    },
    { text: '*:22', port: 22, kind: 'dual', processes: [{ name: 'sshd', pid: 700 }] },
    { text: '[2001:db8::1]:8080', port: 8080, kind: 'ip6', processes: [] },
    { text: '[::ffff:192.0.2.1]:8081', port: 8081, kind: 'ip4', processes: [] },
    { text: '0.0.0.0:5999', port: 5999, kind: 'ip4', processes: [{ name: 'nginx', pid: 900 }] },
    { text: '[fe80::1]%eth0:9000', port: 9000, kind: 'ip6', processes: [] },
    { text: '127.0.0.53%lo:53', port: 53, kind: 'ip4', processes: [{ name: 'a \\"quoted\\" name', pid: 12 }] },
  ]);
});
