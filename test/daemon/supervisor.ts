import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { describeChanges } from '../../src/daemon/supervisor.js';

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
    'port 5999: backend port 5999 -> 6999',
    'port 5999: workers 1 -> 2',
    'port 7000 added (backend port 7000, 1 worker)',
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
