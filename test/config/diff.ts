import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { describeChanges, planReload } from '../../src/config/diff.js';

const base = `prefixes: [2001:db8:5999::/96]
services:
  - port: 5999
  - port: 6000
rules:
  - action: permit
    to: 192.0.2.10
`;
const config = (text: string) => parseConfig(text, '/etc/faithd6.yaml').config;

t.test('no change says nothing', async (t) => {
  t.same(describeChanges(config(base), config(base)), []);
});

t.test('every kind of change is named', async (t) => {
  const after = `prefixes: [2001:db8:5999::/96]
services:
  - port: 5999
    backendPort: 6999
    workers: 2
  - port: 7000
rules:
  - action: deny
    to: 192.0.2.0/24
  - action: permit
    to: 192.0.2.10
timeouts:
  idle: 1h
limits:
  connectionsPerWorker: 10
log:
  level: debug
`;
  t.same(describeChanges(config(base), config(after)), [
    'port 5999: backendPort 5999 -> 6999',
    'port 5999: workers 1 -> 2',
    'port 7000 added (backendPort 7000, workers 1, proxyProtocol none, source not set, protocol tcp)',
    'port 6000 removed (its connections drain)',
    'rules changed (1 -> 2 rules)',
    'timeouts.idle: 2h4m -> 1h',
    'limits.connectionsPerWorker: 4096 -> 10',
    'log.level: info -> debug',
  ]);
});

t.test('a rule edited in place is a change even when the count stays', async (t) => {
  t.same(describeChanges(config(base), config(base.replace('192.0.2.10', '192.0.2.11'))), ['rules changed (1 -> 1 rules)']);
});

t.test('a reload keeps what only a restart can change, and says so', async (t) => {
  const running = config(base);
  const edited = `prefixes: [2001:db8:6000::/96]
route: external
services:
  - port: 5999
rules: []
dataPlane: js
listenBacklog: 64
user: nobody
runtimeDirectory: /run/other
`;
  const plan = planReload(running, config(edited));
  t.same([plan.config.dataPlane, plan.config.listenBacklog], ['native', 0], 'the data plane and the listen backlog stay');
  t.same(plan.config.prefixes, ['2001:db8:5999::/96'], 'the running prefixes stay');
  t.equal(plan.config.route, 'manage', 'and the route mode');
  t.equal(plan.config.user, null, 'and the user');
  t.equal(plan.config.runtimeDirectory, '/run/faithd6', 'and the runtime directory');
  t.same(
    plan.config.services,
    [{ port: 5999, backendPort: 5999, workers: 1, proxyProtocol: 'none', source: null, protocol: 'tcp' }],
    'the services are the new ones',
  );
  t.same(plan.kept, [
    'prefixes is unchanged until faithd6 is restarted (2001:db8:5999::/96 stays; the file says 2001:db8:6000::/96)',
    'route is unchanged until faithd6 is restarted (manage stays; the file says external)',
    'dataPlane is unchanged until faithd6 is restarted (native stays; the file says js)',
    'listenBacklog is unchanged until faithd6 is restarted (0 stays; the file says 64)',
    'user is unchanged until faithd6 is restarted (not set stays; the file says nobody)',
    'runtimeDirectory is unchanged until faithd6 is restarted (/run/faithd6 stays; the file says /run/other)',
  ]);
  t.same(plan.changes, ['port 6000 removed (its connections drain)', 'rules changed (1 -> 0 rules)'], 'only what is applied is listed as a change');
});

t.test('a key order that differs is no change', async (t) => {
  const explicit = base.replace('  - port: 5999\n', '  - {workers: 1, backendPort: 5999, port: 5999}\n');
  t.not(explicit, base);
  t.same(describeChanges(config(base), config(explicit)), []);
});
