import t from 'tap';
import { formatBytes, formatStatus } from '../../src/cli/status.js';
import type { DaemonStatus } from '../../src/control/protocol.js';
import { emptyStats } from '../../src/worker/messages.js';

const stats = (active: number, relayed: number, up: number, down: number) => ({
  ...emptyStats(),
  active,
  relayed,
  denied: 2,
  notTranslated: 1,
  limited: 0,
  connectFailed: 3,
  up,
  down,
  acceptErrors: 0,
  ends: { fin: relayed },
  deniedBy: { 'no matching rule': 2 },
  limitedBy: {},
});

const STATUS: DaemonStatus = {
  pid: 4242,
  version: '1.2.3',
  config: '/etc/faithd6.yaml',
  startedAt: '2026-11-22T10:00:00.000Z',
  uptime: 3723,
  prefixes: ['2001:db8:5999::/96'],
  dataPlane: { configured: 'native', dataPlane: 'native', fallback: null },
  announce: null,
  lastReload: { ok: true, at: '2026-11-22T11:00:00.000Z', changes: ['rules changed (1 -> 2 rules)'], warnings: [] },
  ports: [
    {
      port: 5999,
      backendPort: 5999,
      workers: [
        { pid: 4243, restarts: 0, answering: true, stats: stats(1, 10, 1536, 3 * 1024 * 1024) },
        { pid: null, restarts: 2, answering: false, stats: null },
      ],
      dataPlane: { dataPlane: 'native', fallback: null },
      totals: stats(1, 10, 1536, 3 * 1024 * 1024),
    },
  ],
  totals: stats(1, 10, 1536, 3 * 1024 * 1024),
};

t.test('bytes for people', async (t) => {
  t.equal(formatBytes(0), '0 B');
  t.equal(formatBytes(1023), '1023 B');
  t.equal(formatBytes(1536), '1.5 KiB');
  t.equal(formatBytes(5 * 1024 ** 3), '5.0 GiB');
});

t.test('the human status says which data plane relays, and why not the native one', async (t) => {
  t.match(formatStatus(STATUS, { valid: true }), '\ndata plane: native\n');
  const ftp = { ...STATUS.ports[0]!, port: 21, backendPort: 21, dataPlane: { dataPlane: 'js' as const, fallback: 'the FTP gateway relays in JavaScript' } };
  const mixed = formatStatus({ ...STATUS, ports: [...STATUS.ports, ftp] }, { valid: true });
  t.match(mixed, 'port 21 -> backend port 21, 2 workers (js, not native: the FTP gateway relays in JavaScript): ', 'a port on another plane says so');
  t.match(mixed, 'port 5999 -> backend port 5999, 2 workers: ', 'a port on the daemon-wide plane says nothing more');
  const fallback = { configured: 'native' as const, dataPlane: 'js' as const, fallback: 'the native addon did not load: No native build was found' };
  t.match(
    formatStatus({ ...STATUS, dataPlane: fallback }, { valid: true }),
    '\ndata plane: js, not native: the native addon did not load: No native build was found\n',
  );
});

t.test('the human status names every port, worker and counter', async (t) => {
  const text = formatStatus(STATUS, { valid: true });
  t.match(text, 'faithd6 is running: pid 4242, up 1h2m3s, version 1.2.3');
  t.match(text, 'config: /etc/faithd6.yaml\n');
  t.match(text, 'last reload: 2026-11-22T11:00:00.000Z, applied (rules changed (1 -> 2 rules))');
  t.match(
    text,
    'port 5999 -> backend port 5999, 2 workers: 1 active, 10 relayed, 2 denied, 1 not translated, 0 over limit, 3 connect failures, 1.5 KiB up, 3.0 MiB down',
  );
  t.match(text, '  worker pid 4243, 1 active, 10 relayed, 0 restarts');
  t.match(text, '  worker restarting, 2 restarts');
  t.match(text, '  ended: fin 10\n');
  t.match(text, '  denied: no matching rule 2\n');
  t.notMatch(text, 'over limit:', 'no limit line without limit hits');
});

t.test('a refused reload and an invalid file on disk are shown plainly', async (t) => {
  const refused: DaemonStatus = { ...STATUS, lastReload: { ok: false, at: 'T', changes: [], warnings: [], error: 'f.yaml:3:1: bad' } };
  const text = formatStatus(refused, { valid: false, error: 'f.yaml:9:2: worse' });
  t.match(text, 'last reload: T, REFUSED, the running config is unchanged: f.yaml:3:1: bad');
  t.match(text, 'the file is now INVALID, a reload would be refused');
  t.match(text, '  f.yaml:9:2: worse');
  const none = formatStatus({ ...STATUS, lastReload: null, ports: [] }, { valid: true });
  t.match(none, 'last reload: none');
});
