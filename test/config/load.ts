import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import { DEFAULTS } from '../../src/config/types.js';
import type { HostFacts } from '../../src/config/semantic.js';
import { ConfigError } from '../../src/errors.js';
import { MINIMAL_CONFIG } from '../fixtures/configs.js';

const FILE = '/etc/faithd6.yaml';
const EXAMPLE = fileURLToPath(new URL('../../etc/faithd6.yaml', import.meta.url));

/** `FILE:line:col` of the nth occurrence of `needle` in `text`, computed from the text alone. */
function at(text: string, needle: string, nth = 1): string {
  let index = -1;
  for (let i = 0; i < nth; i++) {
    index = text.indexOf(needle, index + 1);
    if (index < 0) throw new Error(`fixture has no occurrence ${nth} of ${JSON.stringify(needle)}`);
  }
  const before = text.slice(0, index);
  const line = before.split('\n').length;
  const col = index - before.lastIndexOf('\n');
  return `${FILE}:${line}:${col}`;
}

/** The lines of the ConfigError that parsing `text` throws (fails the test if none). */
function errorsOf(t: Test, text: string, host?: HostFacts): string[] {
  try {
    parseConfig(text, FILE, host);
  } catch (err) {
    t.type(err, ConfigError);
    return (err as ConfigError).message.split('\n');
  }
  t.fail('expected a ConfigError');
  return [];
}

/**
 * Asserts that parsing `text` reports, among its errors, one at the nth `needle` for the
 * key `path` whose reason matches `reason`.
 */
function expectError(t: Test, text: string, needle: string, path: string, reason: RegExp, nth = 1): void {
  const lines = errorsOf(t, text);
  const prefix = `${at(text, needle, nth)}: ${path === '' ? '' : `${path}: `}`;
  const line = lines.find((l) => l.startsWith(prefix));
  if (line === undefined) {
    t.fail(`no error starts with ${prefix}`, { found: lines });
    return;
  }
  t.match(line.slice(prefix.length), reason, prefix);
}

const VALID = MINIMAL_CONFIG;

t.test('a minimal file gets every default, from DEFAULTS', async (t) => {
  const { config, warnings } = parseConfig(VALID, FILE);
  t.same(warnings, []);
  t.same(config, {
    file: FILE,
    prefixes: ['2001:db8:5999::/96'],
    route: DEFAULTS.route,
    services: [{ port: 5999, backendPort: 5999, workers: 1, proxyProtocol: 'none', source: null, protocol: 'tcp' }],
    rules: [{ action: 'permit', from: ['::/0'], to: ['192.0.2.10/32'], ports: [] }],
    timeouts: DEFAULTS.timeouts,
    limits: DEFAULTS.limits,
    log: DEFAULTS.log,
    source: null,
    metrics: { listen: null },
    announce: { birdSocket: null, protocol: 'faithd6', withdrawGrace: 2000 },
    dataPlane: 'native',
    listenBacklog: 0,
    user: DEFAULTS.user,
    runtimeDirectory: DEFAULTS.runtimeDirectory,
  });
});

t.test('user and runtimeDirectory', async (t) => {
  const { config } = parseConfig(`${VALID}user: faithd6\nruntimeDirectory: /run/faithd6-b/\n`, FILE);
  t.equal(config.user, 'faithd6');
  t.equal(config.runtimeDirectory, '/run/faithd6-b', 'a trailing slash is dropped');
  expectError(t, `${VALID}user: "root; rm -rf /"\n`, '"root; rm -rf /"', 'user', /is not a user name/);
  expectError(t, `${VALID}user: 12345\n`, '12345', 'user', /expected a user name/);
  expectError(t, `${VALID}runtimeDirectory: run/faithd6\n`, 'run/faithd6', 'runtimeDirectory', /is not an absolute path/);
});

t.test('every key set, in canonical form', async (t) => {
  const text = `# leading comment
prefixes:
  - 2001:DB8:5999:0:0:0::/96
  - 2001:db8:122:344::/64
route: external
services:
  - port: 5999
    backendPort: 6000
    workers: 4
  - port: 554
rules:
  - action: deny
    from: [2001:db8:bad:0::/48, 2001:db8::1]
    to: [192.0.2.0/24]
    ports: 554
  - action: permit
    from: 2001:db8::/32
    to: 192.0.2.10/32
    ports: [5999, 554]
timeouts:
  connect: 1500ms
  idle: 1h
  halfClosed: 1m30s
  drain: 0
limits:
  connectionsPerWorker: 100
log:
  level: debug
dataPlane: js
listenBacklog: 1024
user: nobody
runtimeDirectory: /run/faithd6-test
`;
  const { config, warnings } = parseConfig(text, FILE);
  t.same(warnings, []);
  t.same(config, {
    file: FILE,
    prefixes: ['2001:db8:5999::/96', '2001:db8:122:344::/64'],
    route: 'external',
    services: [
      { port: 5999, backendPort: 6000, workers: 4, proxyProtocol: 'none', source: null, protocol: 'tcp' },
      { port: 554, backendPort: 554, workers: 1, proxyProtocol: 'none', source: null, protocol: 'tcp' },
    ],
    rules: [
      { action: 'deny', from: ['2001:db8:bad::/48', '2001:db8::1/128'], to: ['192.0.2.0/24'], ports: [554] },
      { action: 'permit', from: ['2001:db8::/32'], to: ['192.0.2.10/32'], ports: [5999, 554] },
    ],
    timeouts: { connect: 1500, idle: 3_600_000, halfClosed: 90_000, drain: 0 },
    limits: { ...DEFAULTS.limits, connectionsPerWorker: 100 },
    log: { level: 'debug' },
    source: null,
    metrics: { listen: null },
    announce: { birdSocket: null, protocol: 'faithd6', withdrawGrace: 2000 },
    dataPlane: 'js',
    listenBacklog: 1024,
    user: 'nobody',
    runtimeDirectory: '/run/faithd6-test',
  });
});

t.test('a partial timeouts mapping keeps the other defaults', async (t) => {
  const { config } = parseConfig(`${VALID}timeouts:\n  idle: 3h\nlimits: {}\nlog: {}\n`, FILE);
  t.same(config.timeouts, { ...DEFAULTS.timeouts, idle: 3 * 3_600_000 });
  t.same(config.limits, DEFAULTS.limits);
  t.same(config.log, DEFAULTS.log);
});

t.test('the result is deeply frozen', async (t) => {
  const loaded = parseConfig(VALID, FILE);
  const { config } = loaded;
  for (const [name, value] of Object.entries({
    loaded,
    warnings: loaded.warnings,
    config,
    prefixes: config.prefixes,
    services: config.services,
    service: config.services[0],
    rules: config.rules,
    rule: config.rules[0],
    from: config.rules[0]?.from,
    to: config.rules[0]?.to,
    ports: config.rules[0]?.ports,
    timeouts: config.timeouts,
    limits: config.limits,
    log: config.log,
  })) {
    t.ok(Object.isFrozen(value), `${name} is frozen`);
  }
  t.throws(() => {
    (config as { route: string }).route = 'external';
  }, TypeError);
  t.throws(() => {
    (config.rules as unknown[]).push({});
  }, TypeError);
  t.equal(Object.isFrozen(DEFAULTS.timeouts), false, 'DEFAULTS is copied, not frozen in place');
});

t.test('aliases are followed', async (t) => {
  const text = `prefixes: [2001:db8:5999::/96]
services:
  - port: &p 5999
rules:
  - action: permit
    to: 192.0.2.10
    ports: *p
`;
  t.same(parseConfig(text, FILE).config.rules[0]?.ports, [5999]);
  const broken = VALID.replace('to: 192.0.2.10', 'to: *nowhere');
  t.same(errorsOf(t, broken), [`${at(broken, '*nowhere')}: rules[0].to: alias *nowhere has no anchor &nowhere before it`]);
});

t.test('unknown key at the root', async (t) => {
  expectError(t, `Route: manage\n${VALID}`, 'Route', 'Route', /^unknown key "Route" \(did you mean "route"\?\);/);
  expectError(t, `colour: red\n${VALID}`, 'colour', 'colour', /^unknown key "colour"; expected one of:/);
  const text = `prefix: [2001:db8:5999::/96]\n${VALID.split('\n').slice(1).join('\n')}`;
  expectError(
    t,
    text,
    'prefix:',
    'prefix',
    /^unknown key "prefix" \(did you mean "prefixes"\?\); expected one of: prefixes, route, services, rules, timeouts, limits, log, source, metrics, announce, dataPlane, listenBacklog, user, runtimeDirectory$/,
  );
});

t.test('unknown keys in nested mappings', async (t) => {
  const text = `prefixes: [2001:db8:5999::/96]
services:
  - port: 5999
    prot: 1
rules:
  - action: permit
    to: 192.0.2.10
    form: ::/0
timeouts: {conect: 5s}
limits:
  connections: 5
log:
  level: info
  file: /var/log/x
  ? [a, b]
  : 1
`;
  expectError(
    t,
    text,
    'prot',
    'services[0].prot',
    /^unknown key "prot" \(did you mean "port"\?\); expected one of: port, backendPort, workers, proxyProtocol, source, protocol$/,
  );
  expectError(t, text, 'form', 'rules[0].form', /^unknown key "form" \(did you mean "from"\?\); expected one of: action, from, to, ports$/);
  expectError(t, text, 'conect', 'timeouts.conect', /did you mean "connect"/);
  expectError(
    t,
    text,
    'connections',
    'limits.connections',
    /^unknown key "connections"; expected one of: connectionsPerWorker, connectionsPerSource, sourcePrefixLength, /,
  );
  expectError(t, text, 'file', 'log.file', /^unknown key "file"; expected one of: level$/);
  expectError(t, text, '[a, b]', 'log.?', /^unknown key a list; expected one of: level$/);
  t.equal(errorsOf(t, text).length, 6, 'one error each, nothing more');
});

t.test('wrong types', async (t) => {
  const text = `prefixes: {a: 1}
route: true
services: 5999
rules: permit everything
timeouts: []
limits: 4096
log: info
`;
  expectError(t, text, '{a: 1}', 'prefixes', /^expected a list of translation prefixes such as 2001:db8:5999::\/96, found a mapping$/);
  expectError(t, text, 'true', 'route', /^expected one of: manage, external; found true \(a boolean\)$/);
  expectError(t, text, '5999', 'services', /^expected a list of services, each with a port, found 5999 \(a number\)$/);
  expectError(t, text, 'permit everything', 'rules', /^expected a list of access rules.*, found "permit everything" \(a string\)$/);
  expectError(t, text, '[]', 'timeouts', /^expected a mapping of timeouts .*, found a list$/);
  expectError(t, text, '4096', 'limits', /found 4096 \(a number\)$/);
  expectError(t, text, 'info', 'log', /found "info" \(a string\)$/);
  const nested = `prefixes: 2001:db8:5999::/96
route: [manage]
services:
  - port: {p: 1}
  - {port}
rules: []
timeouts:
  connect: [5s]
`;
  expectError(t, nested, '[manage]', 'route', /^expected one of: manage, external; found a list$/);
  expectError(t, nested, '{p: 1}', 'services[0].port', /^expected an integer from 1 to 65535, found a mapping$/);
  // `{port}` is a key with no value at all: the message points at the key.
  expectError(t, nested, 'port}', 'services[1].port', /^expected an integer from 1 to 65535, found nothing$/);
  expectError(t, nested, '[5s]', 'timeouts.connect', /^expected a duration such as 10s, 5m or 1h30m, found a list$/);
  const items = `prefixes: [5999]
services:
  - 5999
  - [1]
rules:
  - to: [[192.0.2.1]]
    action: permit
  - action: deny
    to: !!binary aGVsbG8=
  - nonsense
`;
  expectError(t, items, '5999', 'prefixes[0]', /^expected a translation prefix such as 2001:db8:5999::\/96, found 5999 \(a number\)$/);
  expectError(t, items, '5999', 'services[0]', /^expected a service: a mapping .*, found 5999 \(a number\)$/, 2);
  expectError(t, items, '[1]', 'services[1]', /found a list$/);
  expectError(t, items, 'nonsense', 'rules[2]', /^expected a rule: a mapping with action, to and optionally from and ports, found "nonsense" \(a string\)$/);
  expectError(t, items, '[192.0.2.1]', 'rules[0].to[0]', /^expected an IPv4 network such as 192\.0\.2\.0\/24, found a list$/);
  // A tagged value is located where its value starts, after the tag.
  expectError(t, items, 'aGVsbG8=', 'rules[1].to', /^expected an IPv4 network such as 192\.0\.2\.0\/24, found aGVsbG8= \(a !!binary value\)$/);
});

t.test('missing prefixes, pointing at the mapping that lacks it', async (t) => {
  const text = `# faithd6\n${VALID.split('\n').slice(1).join('\n')}`;
  const lines = errorsOf(t, text);
  t.same(lines, [`${at(text, 'services:')}: prefixes: required key is missing (expected a list of translation prefixes such as 2001:db8:5999::/96)`]);
});

t.test('other missing required keys', async (t) => {
  const text = `prefixes: 2001:db8:5999::/96
services:
  - backendPort: 80
rules:
  - to: 192.0.2.1
  - action: permit
`;
  expectError(t, text, 'backendPort', 'services[0].port', /^required key is missing \(expected an integer from 1 to 65535, the port clients connect to\)$/);
  expectError(t, text, 'to:', 'rules[0].action', /^required key is missing \(expected permit or deny\)$/);
  expectError(t, text, 'action: permit', 'rules[1].to', /^required key is missing \(expected the IPv4 destinations/);
  const noServicesNoRules = 'prefixes: 2001:db8:5999::/96\n';
  expectError(t, noServicesNoRules, 'prefixes', 'services', /^required key is missing/);
  expectError(t, noServicesNoRules, 'prefixes', 'rules', /^required key is missing/);
});

t.test('keys with no value', async (t) => {
  const text = `prefixes:
services:
  - port:
rules:
  - action: permit
    to:
`;
  expectError(t, text, 'prefixes', 'prefixes', /^expected a list of translation prefixes .*, found nothing$/);
  expectError(t, text, 'port', 'services[0].port', /^expected an integer from 1 to 65535, found nothing$/);
  expectError(t, text, 'to:', 'rules[0].to', /found nothing$/);
  // An explicit null is located at the null itself.
  expectError(t, 'prefixes: ~\n', '~', 'prefixes', /found nothing$/);
});

t.test('empty lists where an entry is needed', async (t) => {
  const text = `prefixes: []
services: []
rules:
  - action: permit
    from: []
    to: []
    ports: []
`;
  expectError(t, text, '[]', 'prefixes', /^expected a list of translation prefixes .*, found an empty list$/);
  expectError(t, text, '[]', 'services', /found an empty list$/, 2);
  expectError(t, text, '[]', 'rules[0].from', /^expected an IPv6 network such as 2001:db8::\/32, or a list of them, found an empty list$/, 3);
  expectError(t, text, '[]', 'rules[0].to', /found an empty list$/, 4);
  expectError(t, text, '[]', 'rules[0].ports', /found an empty list$/, 5);
});

t.test('bad prefixes', async (t) => {
  const cases: [string, RegExp][] = [
    ['2001:db8:5999::/80', /^"2001:db8:5999::\/80" has length \/80; RFC 6052 allows \/32, \/40, \/48, \/56, \/64, \/96$/],
    ['2001:db8:5999::1/96', /^"2001:db8:5999::1\/96" has host bits set \(the network is 2001:db8:5999::\/96\)$/],
    ['::ffff:0:0/96', /overlaps IPv4-mapped addresses \(::ffff:0:0\/96\), which cannot be a translation prefix$/],
    ['::/96', /overlaps IPv4-compatible addresses \(::\/96\)/],
    ['fe80::/64', /overlaps link-local addresses \(fe80::\/10\)/],
    ['ff05::/96', /overlaps multicast addresses \(ff00::\/8\)/],
    ['2001:db8:0:0:100::/96', /bits 64 to 71 set/],
    ['"2001:db8:5999::"', /^"2001:db8:5999::" needs a prefix length, such as 2001:db8:5999::\/96$/],
    ['192.0.2.0/24', /is not an IPv6 address or network/],
  ];
  for (const [prefix, reason] of cases) {
    // The bad prefix comes first, so that the needle's first occurrence is the one meant.
    const text = `# a comment\nprefixes:\n  - ${prefix}\n  - 2001:db8:1::/96\n${VALID.split('\n').slice(1).join('\n')}`;
    expectError(t, text, prefix, 'prefixes[0]', reason);
  }
});

t.test('an unquoted address ending in "::" is explained', async (t) => {
  const text = VALID.replace('to: 192.0.2.10', 'from:\n      - 2001:db8::\n    to: 192.0.2.10');
  expectError(
    t,
    text,
    '2001:db8::',
    'rules[0].from[0]',
    /found a mapping \(YAML reads 2001:db8:: as a key because it ends in a colon; put it in quotes: "2001:db8::"\)$/,
  );
});

t.test('mappings where a single value belongs are shown as such', async (t) => {
  const text = `prefixes:
  - {}
  - {a: 1, b: 2}
  - {"x:": 1}
  - ? "y:"
${VALID.split('\n').slice(1).join('\n')}`;
  expectError(t, text, '{}', 'prefixes[0]', /found a mapping$/);
  expectError(t, text, '{a: 1', 'prefixes[1]', /found a mapping$/);
  expectError(t, text, '{"x:"', 'prefixes[2]', /found a mapping$/);
  expectError(t, text, '? "y:"', 'prefixes[3]', /found a mapping \(YAML reads y:: as a key/);
});

t.test('overlapping prefixes', async (t) => {
  const text = `prefixes: [2001:db8::/32, 2001:db8:5999::/96, 64:ff9b::/96, 64:ff9b::/96]
${VALID.split('\n').slice(1).join('\n')}`;
  expectError(t, text, '2001:db8:5999::/96', 'prefixes[1]', /^"2001:db8:5999::\/96" overlaps prefixes\[0\] \(2001:db8::\/32\); prefixes must not overlap$/);
  expectError(t, text, '64:ff9b::/96', 'prefixes[3]', /^"64:ff9b::\/96" repeats prefixes\[2\] \(64:ff9b::\/96\)/, 2);
});

t.test('bad ports', async (t) => {
  const text = `prefixes: 2001:db8:5999::/96
services:
  - port: 0
  - port: 70000
  - port: abc
  - port: "5999"
  - port: 1.5
  - port: 0x10000
rules: []
`;
  expectError(t, text, '0\n', 'services[0].port', /^0 is out of range \(expected an integer from 1 to 65535\)$/);
  expectError(t, text, '70000', 'services[1].port', /^70000 is out of range \(expected an integer from 1 to 65535\)$/);
  expectError(t, text, 'abc', 'services[2].port', /^expected an integer from 1 to 65535, found "abc" \(a string\)$/);
  expectError(t, text, '"5999"', 'services[3].port', /found "5999" \(a string\) \(write numbers without quotes\)$/);
  expectError(t, text, '1.5', 'services[4].port', /found 1\.5 \(a number\)$/);
  expectError(t, text, '0x10000', 'services[5].port', /^0x10000 is out of range/);
  const backend = VALID.replace('- port: 5999', '- port: 5999\n    backendPort: 65536');
  expectError(t, backend, '65536', 'services[0].backendPort', /^65536 is out of range/);
});

t.test('a duplicate port points at the second service', async (t) => {
  const text = `prefixes: 2001:db8:5999::/96
services:
  - port: 5999
  - port: 554
  - port: 5999
    backendPort: 6000
rules: []
`;
  const lines = errorsOf(t, text);
  t.same(lines, [`${at(text, '5999', 3)}: services[2].port: port 5999 is already a service (services[0]); each port may appear once`]);
});

t.test('bad workers', async (t) => {
  const text = `prefixes: 2001:db8:5999::/96
services:
  - port: 1
    workers: 0
  - port: 2
    workers: 65
  - port: 3
    workers: two
rules: []
`;
  expectError(t, text, '0\n', 'services[0].workers', /^0 is out of range \(expected an integer from 1 to 64\)$/);
  expectError(t, text, '65', 'services[1].workers', /^65 is out of range \(expected an integer from 1 to 64\)$/);
  expectError(t, text, 'two', 'services[2].workers', /^expected an integer from 1 to 64, found "two" \(a string\)$/);
});

t.test('bad durations', async (t) => {
  const text = `${VALID}timeouts:
  connect: 11m
  idle: 7440
  halfClosed: -4m
  drain: 25d
`;
  expectError(t, text, '11m', 'timeouts.connect', /^"11m" is too long \(expected at most 10m\)$/);
  expectError(t, text, '7440', 'timeouts.idle', /^7440 has no unit; write a unit, e\.g\. 10s$/);
  expectError(t, text, '-4m', 'timeouts.halfClosed', /negative/);
  expectError(t, text, '25d', 'timeouts.drain', /^"25d" is too long \(expected at most 24d, the longest timer Node\.js can run\)$/);
  const more = `${VALID}timeouts:
  connect: 0s
  idle: 1 hour
  halfClosed: true
  drain: 0
`;
  expectError(t, more, '0s', 'timeouts.connect', /^"0s" is too short \(expected more than 0\)$/);
  expectError(t, more, '1 hour', 'timeouts.idle', /is not a duration/);
  expectError(t, more, 'true', 'timeouts.halfClosed', /^expected a duration such as 10s, 5m or 1h30m, found true \(a boolean\)$/);
  t.equal(errorsOf(t, more).length, 3, 'drain: 0 is fine');
});

t.test('bad rule action', async (t) => {
  const text = VALID.replace('action: permit', 'action: allow');
  expectError(t, text, 'allow', 'rules[0].action', /^expected one of: permit, deny; found "allow" \(a string\)$/);
});

t.test('bad rule from', async (t) => {
  const text = VALID.replace('to: 192.0.2.10', 'from: [2001:db8::/32, 10.0.0.0/8, 2001:db8::1/32, 64]\n    to: 192.0.2.10');
  expectError(t, text, '10.0.0.0/8', 'rules[0].from[1]', /^"10\.0\.0\.0\/8" is not an IPv6 address or network$/);
  expectError(t, text, '2001:db8::1/32', 'rules[0].from[2]', /host bits set/);
  expectError(t, text, '64]', 'rules[0].from[3]', /^expected an IPv6 network such as 2001:db8::\/32, found 64 \(a number\)$/);
  const badLength = VALID.replace('to: 192.0.2.10', 'from: ::/129\n    to: 192.0.2.10');
  expectError(t, badLength, '::/129', 'rules[0].from', /invalid prefix length/);
});

t.test('bad rule to', async (t) => {
  const text = `prefixes: 2001:db8:5999::/96
services: [{port: 5999}]
rules:
  - action: permit
    to: [192.0.2.10, 10.0.0.300/8, 192.0.2.1/24, 2001:db8::1]
`;
  expectError(t, text, '10.0.0.300/8', 'rules[0].to[1]', /^"10\.0\.0\.300\/8" is not an IPv4 address or network$/);
  expectError(t, text, '192.0.2.1/24', 'rules[0].to[2]', /^"192\.0\.2\.1\/24" has host bits set \(the network is 192\.0\.2\.0\/24\)$/);
  expectError(t, text, '2001:db8::1]', 'rules[0].to[3]', /is not an IPv4 address or network/);
});

t.test('bad rule ports', async (t) => {
  const text = VALID.replace('to: 192.0.2.10', 'to: 192.0.2.10\n    ports: [5999, 0, http]');
  expectError(t, text, '0,', 'rules[0].ports[1]', /^0 is out of range \(expected an integer from 1 to 65535\)$/);
  expectError(t, text, 'http', 'rules[0].ports[2]', /found "http" \(a string\)$/);
  const mapping = VALID.replace('to: 192.0.2.10', 'to: 192.0.2.10\n    ports: {a: 1}');
  expectError(t, mapping, '{a: 1}', 'rules[0].ports', /^expected a service port or a list of them .*, found a mapping$/);
});

t.test('a rule port that is not a service', async (t) => {
  const text = `prefixes: 2001:db8:5999::/96
services:
  - port: 5999
  - port: 554
rules:
  - action: permit
    to: 192.0.2.10
    ports: 80
`;
  const lines = errorsOf(t, text);
  t.same(lines, [`${at(text, '80')}: rules[0].ports: port 80 is not a service port (services: 5999, 554); add it to services or remove it here`]);
});

t.test('a YAML syntax error', async (t) => {
  const text = `prefixes: [2001:db8:5999::/96]
services:
  - port: "5999
rules: []
`;
  const lines = errorsOf(t, text);
  t.ok(lines.length >= 1);
  // The scanner notices the unterminated quote at the end of the file.
  t.match(lines[0], new RegExp(`^${FILE}:\\d+:\\d+: .*YAML syntax error: Missing closing "quote`));
  const tab = 'prefixes:\n\t- 2001:db8:5999::/96\n';
  expectError(t, tab, '\t', 'prefixes', /^YAML syntax error: Tabs are not allowed as indentation$/);
  // A key with no value before the error, to walk past it when locating the error.
  const afterEmptyKey = `? route\nprefixes: [2001:db8:5999::/96\nservices: x\n`;
  // yaml notices the unclosed [ where the next key starts.
  expectError(
    t,
    afterEmptyKey,
    'services',
    'services',
    /^YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a \]$/,
  );
  const twoDocs = `${VALID}---\n${VALID}`;
  expectError(t, twoDocs, '---', '', /^YAML syntax error: Source contains multiple documents/);
});

t.test('a duplicate key', async (t) => {
  const text = `prefixes: [2001:db8:5999::/96]
services:
  - port: 5999
    workers: 1
    workers: 2
rules: []
`;
  t.same(errorsOf(t, text), [`${at(text, 'workers', 2)}: services[0].workers: duplicate key "workers" (a key may appear only once in a mapping)`]);
});

t.test('an empty file', async (t) => {
  for (const text of ['', '\n\n', '# only a comment\n']) {
    t.same(errorsOf(t, text), [`${FILE}:1:1: the file is empty; expected a mapping with at least prefixes, services and rules`], JSON.stringify(text));
  }
});

t.test('a root that is not a mapping', async (t) => {
  for (const text of ['- prefixes\n', '\nprefixes\n', '42\n']) {
    const firstChar = text.trim().charAt(0);
    expectError(t, text, firstChar, '', /^expected a mapping of settings .* at the top level, found /);
  }
});

t.test('bad limits and log level', async (t) => {
  const text = `${VALID}limits:
  connectionsPerWorker: 1000001
log:
  level: verbose
route: managed
`;
  expectError(t, text, '1000001', 'limits.connectionsPerWorker', /^1000001 is out of range \(expected an integer from 1 to 1000000\)$/);
  expectError(t, text, 'verbose', 'log.level', /^expected one of: fatal, error, warn, info, debug, trace, silent; found "verbose" \(a string\)$/);
  expectError(t, text, 'managed', 'route', /^expected one of: manage, external; found "managed"/);
});

t.test('every error is reported at once, in file order', async (t) => {
  const text = `prefixes: [2001:db8:5999::/80]
services:
  - port: 70000
rules:
  - action: allow
    to: 192.0.2.10
bogus: 1
`;
  const lines = errorsOf(t, text);
  t.same(
    lines.map((l) => l.split(': ')[0]),
    [at(text, '2001'), at(text, '70000'), at(text, 'allow'), at(text, 'bogus')],
  );
});

t.test('warnings', async (t) => {
  t.test('no rules', async (t) => {
    const text = `prefixes: 2001:db8:5999::/96\nservices: [{port: 1}]\nrules: []\n`;
    t.same(parseConfig(text, FILE).warnings, [`${at(text, '[]')}: rules: no rules: every connection will be denied`]);
  });
  t.test('a permit rule to 0.0.0.0/0', async (t) => {
    const text = `prefixes: 2001:db8:5999::/96
services: [{port: 1}]
rules:
  - action: deny
    to: 0.0.0.0/0
    ports: 1
  - action: permit
    to: [192.0.2.1, 0.0.0.0/0]
`;
    t.same(parseConfig(text, FILE).warnings, [
      `${at(text, '0.0.0.0/0', 2)}: rules[1].to[1]: permits every IPv4 destination: faithd6 is then a relay into your whole IPv4 network`,
    ]);
  });
  t.test('the well-known prefix with non-global destinations', async (t) => {
    const text = `prefixes: [2001:db8:5999::/96, 64:ff9b::/96]
services: [{port: 1}]
rules:
  - action: deny
    to: 10.0.0.0/8
  - action: permit
    to: [8.8.8.8, 10.1.0.0/16, 172.0.0.0/8, 198.51.100.7, 0.0.0.0/0]
`;
    const warnings = parseConfig(text, FILE).warnings;
    t.equal(warnings.length, 5, 'none for the deny rule nor for 8.8.8.8');
    t.match(warnings[0], `${at(text, '10.1.0.0/16')}: rules[1].to[1]: 10.1.0.0/16 overlaps non-global IPv4 space: 10.0.0.0/8 (private use); RFC 6052 §3.1`);
    t.match(warnings[1], `${at(text, '172.0.0.0/8')}: rules[1].to[2]: 172.0.0.0/8 overlaps non-global IPv4 space: 172.16.0.0/12 (private use);`);
    t.match(
      warnings[2],
      `${at(text, '198.51.100.7')}: rules[1].to[3]: 198.51.100.7/32 overlaps non-global IPv4 space: 198.51.100.0/24 (documentation (TEST-NET-2))`,
    );
    t.match(warnings[3], `${at(text, '0.0.0.0/0')}: rules[1].to[4]: permits every IPv4 destination`);
    t.match(
      warnings[4],
      `${at(text, '0.0.0.0/0')}: rules[1].to[4]: 0.0.0.0/0 overlaps non-global IPv4 space: 0.0.0.0/8 ("this network"), 10.0.0.0/8 (private use), 100.64.0.0/10 (shared address space) and 12 more;`,
    );
  });
  t.test('no well-known-prefix warning for a network-specific prefix', async (t) => {
    const text = VALID.replace('192.0.2.10', '10.0.0.1');
    t.same(parseConfig(text, FILE).warnings, []);
  });
  t.test('YAML warnings are passed on with their position', async (t) => {
    const text = VALID.replace('to: 192.0.2.10', 'to: !custom 192.0.2.10');
    t.same(parseConfig(text, FILE).warnings, [`${at(text, '!custom')}: rules[0].to: Unresolved tag: !custom`]);
  });
});

t.test('loadConfig', async (t) => {
  t.test('an unusual read error is passed on as it is', async (t) => {
    for (const thrown of [new Error('something odd'), 'something odd']) {
      const { readConfigFile: mocked } = await t.mockImport<typeof import('../../src/config/read.js')>(
        '../../src/config/read.js',
        // A string on purpose: read.ts must word a non-Error rejection too.
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
        { 'node:fs/promises': { ...(await import('node:fs/promises')), stat: async () => Promise.reject(thrown) } },
      );
      await t.rejects(mocked('/x.yaml'), { name: 'ConfigError', message: 'cannot read /x.yaml: something odd' });
    }
  });
  t.test('a missing file', async (t) => {
    const missing = join(t.testdir(), 'nope.yaml');
    await t.rejects(loadConfig(missing), {
      name: 'ConfigError',
      code: 'CONFIG',
      message: `cannot read ${missing}: no such file or directory`,
      cause: { code: 'ENOENT' },
    });
  });
  t.test('a directory', async (t) => {
    const dir = t.testdir();
    await t.rejects(loadConfig(dir), { message: `cannot use ${dir}: not a regular file (a directory)` });
  });
  t.test('a file with errors names that file', async (t) => {
    const dir = t.testdir();
    const file = join(dir, 'conf', 'faithd6.yaml');
    await mkdir(join(dir, 'conf'));
    await writeFile(file, 'prefixes: x\n');
    await t.rejects(loadConfig(file), { message: `${file}:1:11: prefixes: "x" needs a prefix length, such as x/96` });
  });
  t.test('the shipped example loads cleanly and is not an open relay', async (t) => {
    const { config, warnings } = await loadConfig(EXAMPLE);
    t.same(warnings, []);
    t.equal(config.file, EXAMPLE);
    t.same(config.prefixes, ['2001:db8:5999::/96']);
    const ports = config.services.map((s) => s.port);
    for (const rule of config.rules) {
      for (const port of rule.ports) t.ok(ports.includes(port), `rule port ${port} is a service`);
      if (rule.action !== 'permit') continue;
      for (const to of rule.to) {
        t.equal(to.split('/')[1], '32', `permit ${to} names one host`);
        t.match(to, /^192\.0\.2\./, `permit ${to} is in the documentation range`);
      }
    }
    t.ok(
      config.rules.some((r) => r.action === 'permit'),
      'permits something',
    );
  });
});

t.test('source addresses and the PROXY protocol', async (t) => {
  const text = `${VALID}source: 198.18.0.5\n`.replace('  - port: 5999\n', '  - port: 5999\n    proxyProtocol: v2\n    source: 198.18.0.6\n');
  t.not(text, `${VALID}source: 198.18.0.5\n`, 'the fixture has the service keys');
  const { config } = parseConfig(text, FILE, { ipv4: ['127.0.0.1', '198.18.0.5', '198.18.0.6'] });
  t.equal(config.source, '198.18.0.5');
  t.match(config.services[0], { proxyProtocol: 'v2', source: '198.18.0.6' });

  // Checked against the host: each address that is not one of its own is named where it is.
  const errors = errorsOf(t, text, { ipv4: ['127.0.0.1', '198.18.0.5'] });
  t.same(errors, [
    `${at(text, '198.18.0.6')}: services[0].source: 198.18.0.6 is not an address of this host (its IPv4 addresses: 127.0.0.1, 198.18.0.5); add it to an interface, or remove it here`,
  ]);
  t.match(errorsOf(t, text, { ipv4: [] }), [
    /services\[0\].source: 198.18.0.6 is not/,
    /: source: 198.18.0.5 is not an address of this host \(its IPv4 addresses: none\)/,
  ]);
  t.equal(parseConfig(text, FILE).config.source, '198.18.0.5', 'without host facts (a file checked for another host) no address is refused');

  expectError(t, `${VALID}source: 198.18.0.300\n`, '198.18.0.300', 'source', /^"198\.18\.0\.300" is not an IPv4 address$/);
  expectError(t, `${VALID}source: 198.18.0.0/24\n`, '198.18.0.0/24', 'source', /^"198\.18\.0\.0\/24" is not an IPv4 address$/);
  const v3 = VALID.replace('  - port: 5999\n', '  - port: 5999\n    proxyProtocol: v3\n');
  expectError(t, v3, 'v3', 'services[0].proxyProtocol', /^expected one of: none, v1, v2; found "v3" \(a string\)$/);
});

t.test('metrics.listen: an address and port, canonical; off when absent', async (t) => {
  t.equal(parseConfig(`${VALID}metrics: {listen: "[0:0::1]:9464"}\n`, FILE).config.metrics.listen, '[::1]:9464');
  t.equal(parseConfig(`${VALID}metrics: {listen: 127.0.0.1:9464}\n`, FILE).config.metrics.listen, '127.0.0.1:9464');
  t.equal(parseConfig(`${VALID}metrics: {}\n`, FILE).config.metrics.listen, null);
  for (const bad of ['localhost:9464', '"::1:9464"', '"[::1]:0"', '"[::1]"', '"[::g]:1"']) {
    const text = `${VALID}metrics: {listen: ${bad}}\n`;
    expectError(t, text, bad, 'metrics.listen', /is not an (address and port|IPv6 address|IPv4 address)/);
  }
});

t.test('protocol: tcp by default; ftp, but not with a PROXY protocol header', async (t) => {
  t.equal(parseConfig(VALID, FILE).config.services[0]?.protocol, 'tcp');
  const ftp = VALID.replace('  - port: 5999\n', '  - port: 5999\n    protocol: ftp\n');
  t.not(ftp, VALID, 'the fixture has the service');
  t.equal(parseConfig(ftp, FILE).config.services[0]?.protocol, 'ftp');
  expectError(t, ftp.replace('protocol: ftp', 'protocol: sftp'), 'sftp', 'services[0].protocol', /^expected one of: tcp, ftp; found "sftp" \(a string\)$/);
  const both = ftp.replace('    protocol: ftp\n', '    protocol: ftp\n    proxyProtocol: v1\n');
  t.same(errorsOf(t, both), [
    `${at(both, 'v1')}: services[0].proxyProtocol: an FTP service cannot send a PROXY protocol header: its data connections could not carry one; remove proxyProtocol or protocol: ftp`,
  ]);
  t.equal(parseConfig(both.replace('v1', 'none'), FILE).config.services[0]?.proxyProtocol, 'none', 'proxyProtocol: none is fine');
});

t.test('announce: off by default; a socket path, a BIRD protocol name and a grace period', async (t) => {
  t.same(parseConfig(VALID, FILE).config.announce, { birdSocket: null, protocol: 'faithd6', withdrawGrace: 2000 });
  const text = `${VALID}announce: {birdSocket: /run/bird/bird.ctl/, protocol: translators_6, withdrawGrace: 500ms}\n`;
  t.same(parseConfig(text, FILE).config.announce, { birdSocket: '/run/bird/bird.ctl', protocol: 'translators_6', withdrawGrace: 500 });
  expectError(t, `${VALID}announce: {birdSocket: run/bird.ctl}\n`, 'run/bird.ctl', 'announce.birdSocket', /^"run\/bird\.ctl" is not an absolute path$/);
  expectError(t, `${VALID}announce: {protocol: "faithd6; disable all"}\n`, '"faithd6; disable all"', 'announce.protocol', /is not a BIRD protocol name/);
  expectError(t, `${VALID}announce: {withdrawGrace: 11m}\n`, '11m', 'announce.withdrawGrace', /at most 10m/);
  expectError(
    t,
    `${VALID}announce: {bird: /run/bird/bird.ctl}\n`,
    'bird',
    'announce.bird',
    /^unknown key "bird"; expected one of: birdSocket, protocol, withdrawGrace$/,
  );
});
