import { fileURLToPath } from 'node:url';
import t from 'tap';
import { describeConfig } from '../../src/config/describe.js';
import { loadConfig, parseConfig } from '../../src/config/load.js';

const FILE = '/etc/faithd6.yaml';

/** `FILE:line:col` of `needle` in `text`, computed from the text alone. */
function at(text: string, needle: string): string {
  const index = text.indexOf(needle);
  const before = text.slice(0, index);
  return `${FILE}:${before.split('\n').length}:${index - before.lastIndexOf('\n')}`;
}

t.test('every part of a full config, in order', async (t) => {
  const text = `prefixes:
  - 2001:db8:5999::/96
  - 2001:db8:122:344::/64
route: external
services:
  - port: 5999
  - port: 554
    backendPort: 8554
    workers: 2
rules:
  - action: deny
    from: 2001:db8:bad::/48
    to: 192.0.2.0/24
    ports: 554
  - action: permit
    to: [192.0.2.33, 192.0.2.34]
    ports: [5999, 554]
  - action: permit
    from: [2001:db8::/32, 2001:db8:1::1]
    to: 0.0.0.0/0
timeouts: {connect: 10s, idle: 1h30m, halfClosed: 90s, drain: 0}
limits: {connectionsPerWorker: 100}
log: {level: warn}
dataPlane: js
listenBacklog: 2048
user: nobody
`;
  // Translations of 192.0.2.33 are the ones RFC 6052 §2.4 tabulates for these lengths.
  t.equal(
    describeConfig(parseConfig(text, FILE)),
    `file: ${FILE}
prefixes:
  2001:db8:5999::/96  e.g. 192.0.2.33 -> 2001:db8:5999::c000:221
  2001:db8:122:344::/64  e.g. 192.0.2.33 -> 2001:db8:122:344:c0:2:2100:0
route: external (the local routes for the prefixes are set up outside faithd6)
services:
  port 5999 -> backend port 5999, 1 worker
  port 554 -> backend port 8554, 2 workers
rules (in order, the first match wins):
  1. deny from 2001:db8:bad::/48 to 192.0.2.0/24 ports 554
  2. permit from any to 192.0.2.33/32, 192.0.2.34/32 ports 5999, 554
  3. permit from 2001:db8::/32, 2001:db8:1::1/128 to 0.0.0.0/0 ports any
  otherwise: deny
timeouts: connect 10s, idle 1h30m, halfClosed 1m30s, drain 0s
limits: connectionsPerWorker 100, connectionsPerSource 512, sourcePrefixLength 64, pendingConnects 1024, pendingConnectsPerSource 64, connectionsPerBackend 2048, newConnectionsPerSecond 100
log: level warn
source: not set (the kernel picks it by the route to each backend)
metrics: listen not set (no metrics are served)
announce: birdSocket not set (no announcement: the prefixes are routed to this host by other means), protocol faithd6, withdrawGrace 2s
dataPlane: js (the JavaScript data plane)
listenBacklog: 2048
user: nobody
runtimeDirectory: /run/faithd6
warnings:
  ${at(text, '0.0.0.0/0')}: rules[2].to: permits every IPv4 destination: faithd6 is then a relay into your whole IPv4 network
`,
  );
});

t.test('defaults, and a documentation address when nothing is permitted', async (t) => {
  const text = `prefixes: 2001:db8:5999::/96
services: [{port: 5999}]
rules:
  - action: deny
    to: 192.0.2.10
`;
  const lines = describeConfig(parseConfig(text, FILE)).split('\n');
  for (const line of [
    '  2001:db8:5999::/96  e.g. 192.0.2.1 -> 2001:db8:5999::c000:201',
    'route: manage (faithd6 adds and removes "local PREFIX dev lo" itself)',
    '  port 5999 -> backend port 5999, 1 worker',
    '  1. deny from any to 192.0.2.10/32 ports any',
    '  otherwise: deny',
    'timeouts: connect 5s, idle 2h4m, halfClosed 4m, drain 30s',
    'limits: connectionsPerWorker 4096, connectionsPerSource 512, sourcePrefixLength 64, pendingConnects 1024, pendingConnectsPerSource 64, connectionsPerBackend 2048, newConnectionsPerSecond 100',
    'log: level info',
    'dataPlane: native (the native data plane, or js where its addon cannot load)',
    'listenBacklog: 0 (net.core.somaxconn, the most the kernel allows)',
    'user: not set (faithd6 if that user exists, else nobody)',
    'runtimeDirectory: /run/faithd6',
    'warnings: none',
  ]) {
    t.ok(lines.includes(line), line);
  }
});

t.test('the example address is a host of the first permit rule', async (t) => {
  const cases: [string, string][] = [
    ['198.51.100.0/24', '198.51.100.1 -> 2001:db8:5999::c633:6401'],
    ['198.51.100.6/31', '198.51.100.6 -> 2001:db8:5999::c633:6406'],
    ['198.51.100.7', '198.51.100.7 -> 2001:db8:5999::c633:6407'],
    ['0.0.0.0/0', '192.0.2.1 -> 2001:db8:5999::c000:201'],
  ];
  for (const [to, example] of cases) {
    const text = `prefixes: 2001:db8:5999::/96\nservices: [{port: 1}]\nrules: [{action: permit, to: ${to}}]\n`;
    t.match(describeConfig(parseConfig(text, FILE)), `\n  2001:db8:5999::/96  e.g. ${example}\n`, to);
  }
});

t.test('no rules: only the default deny, and the warning', async (t) => {
  const text = 'prefixes: 2001:db8:5999::/96\nservices: [{port: 1}]\nrules: []\n';
  const out = describeConfig(parseConfig(text, FILE));
  t.match(out, 'rules (in order, the first match wins):\n  otherwise: deny\n');
  t.match(out, `warnings:\n  ${at(text, '[]')}: rules: no rules: every connection will be denied\n`);
});

t.test('the shipped example', async (t) => {
  const file = fileURLToPath(new URL('../../etc/faithd6.yaml', import.meta.url));
  const out = describeConfig(await loadConfig(file));
  t.match(out, '  2001:db8:5999::/96  e.g. 192.0.2.10 -> 2001:db8:5999::c000:20a\n');
  t.match(out, '  1. deny from 2001:db8:bad::/48 to 192.0.2.0/24 ports any\n' + '  2. permit from any to 192.0.2.10/32 ports 5999\n' + '  otherwise: deny\n');
  t.match(out, 'warnings: none\n');
});

t.test('values the schema explains are explained', async (t) => {
  const text = 'prefixes: 2001:db8:5999::/96\nservices: [{port: 1}]\nrules: []\nlimits: {newConnectionsPerSecond: 0}\nroute: external\n';
  const out = describeConfig(parseConfig(text, FILE));
  t.match(out, /^limits: .*, newConnectionsPerSecond 0 \(no limit\)$/m);
  t.match(out, /^route: external \(the local routes for the prefixes are set up outside faithd6\)$/m);
});
