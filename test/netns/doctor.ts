// `faithd6 doctor` in the translator's namespace, through the CLI: each trap it knows is set up
// for real, doctor must show a ✗ with what to do, and the ✗ must turn ✓ once it is fixed.
import { existsSync } from 'node:fs';
import { mkdir, rm, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { stringify } from 'yaml';
import { CLI, PERMIT_CLIENT_TO_S4, startDaemon, type RuleConfig } from '../fixtures/daemon.js';
import { ADDR, buildNetwork, PREFIX, translate } from '../fixtures/netns.js';

const net = await buildNetwork(t);

/** s4's second address: a server the rules of these tests deny. */
const DENIED = ADDR.closed4;
const DENY_CLOSED: RuleConfig = { action: 'deny', to: [`${DENIED}/32`] };

function configFile(t: Test, settings: Record<string, unknown> = {}): Promise<string> {
  const file = join(t.testdir(), 'faithd6.yaml');
  const text = stringify({
    prefixes: [PREFIX],
    route: 'manage',
    services: [{ port: 5999 }, { port: 6100 }],
    rules: [DENY_CLOSED, PERMIT_CLIENT_TO_S4],
    ...settings,
  });
  return writeFile(file, text).then(() => file);
}

/** Runs `faithd6 ARGS` in xl; never throws on a non-zero exit. */
async function faithd6(args: string[]) {
  const proc = net.spawn('xl', process.execPath, [CLI, ...args], { label: `faithd6 ${args.join(' ')}`, inheritNodeOptions: true });
  const exit = await proc.waitExit(30_000);
  const lines = proc.lines.map((l) => (typeof l.raw === 'string' ? l.raw : JSON.stringify(l)));
  return { code: exit.code, out: lines.join('\n'), lines, err: proc.stderr };
}

/** The ✓/✗ line whose title starts with `title`, and the indented lines under it. */
function entry(out: string, title: string): string {
  const lines = out.split('\n');
  const at = lines.findIndex((l) => /^[✓✗] /.test(l) && l.slice(2).startsWith(title));
  if (at < 0) return `(no line for "${title}" in:\n${out})`;
  const rest = lines.slice(at + 1);
  const end = rest.findIndex((l) => !l.startsWith('  '));
  return [lines[at]!, ...rest.slice(0, end < 0 ? rest.length : end)].join('\n');
}

/** Starts a node listener in xl and waits until it listens. */
async function listener(t: Test, options: string) {
  const proc = net.spawn('xl', process.execPath, ['-e', `require('node:net').createServer().listen(${options}, () => console.log('{"event":"listening"}'))`]);
  await proc.waitFor((l) => l.event === 'listening', { timeout: 5000, what: 'listener' });
  t.teardown(() => proc.stop());
  return proc;
}

/** Removes the local route (route up adds it in several tests); testdir, with the config, may be gone by teardown. */
async function removeRoute(): Promise<void> {
  await net.run('xl', 'ip', ['-6', 'route', 'del', 'local', PREFIX, 'table', 'local']).catch(() => undefined);
}

/** `faithd6 route up` for the tests that need the route in place. */
async function routeUp(t: Test, file: string): Promise<void> {
  t.teardown(removeRoute);
  const up = await faithd6(['route', 'up', '-c', file]);
  if (up.code !== 0) throw new Error(`route up: ${up.err}`);
}

async function sysctl(...settings: string[]): Promise<void> {
  await net.run('xl', 'sysctl', ['-q', '-w', ...settings]);
}

t.test('a missing local route is ✗ with the fix, and ✓ after route up', async (t) => {
  const file = await configFile(t);
  const before = await faithd6(['doctor', '-c', file]);
  t.equal(before.code, 1, before.err);
  t.match(before.lines[0], /^✓ config .*faithd6\.yaml: valid: 1 prefix \(64:ff9b:1::\/96\), 2 services \(port 5999, 6100\), 2 rules, route: manage$/);
  t.match(entry(before.out, 'IPv6'), /^✓ IPv6: enabled$/);
  t.match(entry(before.out, `local route ${PREFIX}`), `✗ local route ${PREFIX}: missing`);
  t.match(entry(before.out, `local route ${PREFIX}`), `\n  fix: faithd6 route up -c ${file}`);
  t.match(entry(before.out, 'port 5999'), /^✓ port 5999: \[::\]:5999 is free$/);
  t.match(entry(before.out, 'forwarding'), /^✓ forwarding and router advertisements: IPv6 forwarding is off/);
  t.match(entry(before.out, 'data plane'), /^✓ data plane: native, from \/.*faithd6\.node$/);
  t.match(entry(before.out, 'listen backlog'), /^✓ listen backlog: \d+ \(net\.core\.somaxconn\)$/);
  t.match(before.out, /\n1 of 8 checks failed$/);

  await routeUp(t, file);
  const after = await faithd6(['doctor', '-c', file]);
  t.equal(after.code, 0, after.out);
  t.match(entry(after.out, `local route ${PREFIX}`), `✓ local route ${PREFIX}: present (added by faithd6, proto 70)`);
  t.match(after.out, /\nall 8 checks passed$/);
});

t.test('route: external: the fix is the ip command', async (t) => {
  const file = await configFile(t, { route: 'external' });
  const result = await faithd6(['doctor', '-c', file]);
  t.equal(result.code, 1);
  t.match(entry(result.out, `local route ${PREFIX}`), `fix: ip -6 route add local ${PREFIX} dev lo`);
});

t.test('service ports: a dual-stack listener and another IPv6 listener are ✗, IPv4 services and faithd6 are ✓', async (t) => {
  const file = await configFile(t);
  await routeUp(t, file);
  // The IPv4 service on the translator host itself, on the same port (the cvsupd case).
  await listener(t, `{ port: 5999, host: '${ADDR.xl4}' }`);
  const dual = await listener(t, `{ port: 6100, host: '::' }`);
  let result = await faithd6(['doctor', '-c', file]);
  t.equal(result.code, 1);
  t.match(entry(result.out, 'port 5999'), `✓ port 5999: [::]:5999 is free; IPv4 listener on the same port, not in the way: ${ADDR.xl4}:5999 node (pid `);
  const dualEntry = entry(result.out, 'port 6100');
  t.match(dualEntry, `✗ port 6100: node (pid ${dual.pid}) listens dual-stack on *:6100 (IPv6 and IPv4 at once, not IPv6-only)`);
  t.match(dualEntry, '\n  fix: make that program listen IPv6-only (IPV6_V6ONLY) or IPv4-only');
  await dual.stop();

  const v6only = await listener(t, `{ port: 6100, host: '::', ipv6Only: true }`);
  result = await faithd6(['doctor', '-c', file]);
  t.equal(result.code, 1);
  t.match(entry(result.out, 'port 6100'), `✗ port 6100: node (pid ${v6only.pid}) listens on [::]:6100: faithd6 cannot bind [::]:6100 while it does`);
  await v6only.stop();

  const daemon = await startDaemon(t, net, { services: [{ port: 5999 }, { port: 6100 }], rules: [DENY_CLOSED, PERMIT_CLIENT_TO_S4] });
  t.teardown(() => daemon.stop());
  result = await faithd6(['doctor', '-c', file]);
  t.equal(result.code, 0, result.out);
  t.match(
    entry(result.out, 'port 5999'),
    /^✓ port 5999: faithd6 listens on \[::\]:5999, IPv6-only: .*faithd6: (supervisor|worker).*; IPv4 listener on the same port, not in the way/,
  );
  t.match(entry(result.out, 'port 6100'), /^✓ port 6100: faithd6 listens on \[::\]:6100, IPv6-only/);
  t.equal((await daemon.stop()).code, 0);
});

t.test('forwarding=1 with accept_ra=1 is ✗ with the fix; accept_ra=2 makes it ✓', async (t) => {
  const file = await configFile(t);
  await routeUp(t, file);
  t.teardown(() => sysctl('net.ipv6.conf.all.forwarding=0'));
  await sysctl('net.ipv6.conf.all.forwarding=1');
  const trapped = await faithd6(['doctor', '-c', file]);
  t.equal(trapped.code, 1);
  for (const dev of ['to-c6', 'to-s4']) {
    const line = entry(trapped.out, `forwarding and router advertisements on ${dev}`);
    t.match(line, `✗ forwarding and router advertisements on ${dev}: forwarding is on and accept_ra is 1`);
    t.match(line, 'ignores router advertisements unless accept_ra=2');
    t.match(line, `\n  fix: sysctl -w net.ipv6.conf.${dev}.accept_ra=2`);
  }
  await sysctl('net.ipv6.conf.to-c6.accept_ra=2', 'net.ipv6.conf.to-s4.accept_ra=0');
  const fixed = await faithd6(['doctor', '-c', file]);
  t.equal(fixed.code, 0, fixed.out);
  t.match(entry(fixed.out, 'forwarding'), '✓ forwarding and router advertisements: forwarding is on (to-c6 accept_ra=2, to-s4 accept_ra=0)');
});

t.test('--name: the AAAA in the prefix, its IPv4 permitted, the A record the same', async (t) => {
  const file = await configFile(t);
  await routeUp(t, file);
  // `ip netns exec` bind-mounts /etc/netns/NAME/hosts over /etc/hosts (and resolv.conf: a
  // resolver that answers nothing at once, so a name not in hosts fails fast).
  const dir = `/etc/netns/${net.ns.xl}`;
  const madeParent = !existsSync('/etc/netns');
  await mkdir(dir, { recursive: true });
  t.teardown(async () => {
    await rm(dir, { recursive: true, force: true });
    if (madeParent) await rmdir('/etc/netns').catch(() => undefined); // another run may use it now
  });
  await writeFile(join(dir, 'resolv.conf'), 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n');
  await writeFile(
    join(dir, 'hosts'),
    [
      '127.0.0.1 localhost',
      '::1 localhost',
      `${translate(ADDR.server4)} permitted.test`,
      `${ADDR.server4} permitted.test`,
      `2001:db8:ffff::c612:2 outside.test`,
      `${translate(DENIED)} denied.test`,
      `${translate(ADDR.server4)} mismatch.test`,
      '198.18.0.7 mismatch.test',
      '',
    ].join('\n'),
  );

  const permitted = await faithd6(['doctor', '-c', file, '--name', 'permitted.test']);
  t.equal(permitted.code, 0, permitted.out);
  t.match(permitted.out, `✓ name permitted.test: AAAA ${translate(ADDR.server4)} is in ${PREFIX} and stands for ${ADDR.server4}`);
  t.match(
    permitted.out,
    `✓ name permitted.test: ${ADDR.server4} is permitted: port 5999 by rule 2 (from 2001:db8:c6::/64, e.g. 2001:db8:c6::); port 6100 by rule 2`,
  );
  t.match(permitted.out, `✓ name permitted.test: A ${ADDR.server4} is the IPv4 address the AAAA records stand for`);

  const outside = await faithd6(['doctor', '-c', file, '--name', 'outside.test']);
  t.equal(outside.code, 1);
  t.match(entry(outside.out, 'name outside.test'), `✗ name outside.test: AAAA 2001:db8:ffff::c612:2 is in no translation prefix (${PREFIX})`);
  t.match(entry(outside.out, 'name outside.test'), '\n  fix: publish the translated address of the server instead: faithd6 translate IPV4');

  const denied = await faithd6(['doctor', '-c', file, '--name', 'denied.test']);
  t.equal(denied.code, 1);
  const deniedEntry = entry(denied.out, `name denied.test: ${DENIED}`);
  t.match(deniedEntry, `✗ name denied.test: ${DENIED} is denied to every client on every service port (5999, 6100): denied by rule 1`);
  t.match(
    deniedEntry,
    `\n  fix: add a permit rule for it before any rule that denies it, e.g. - { action: permit, from: [YOUR CLIENTS' PREFIX], to: [${DENIED}/32] }`,
  );

  const mismatch = await faithd6(['doctor', '-c', file, '--name', 'mismatch.test']);
  t.equal(mismatch.code, 1);
  const mismatchEntry = entry(mismatch.out, 'name mismatch.test: A ');
  t.match(mismatchEntry, `✗ name mismatch.test: A 198.18.0.7 but the AAAA records stand for ${ADDR.server4}`);
  t.match(mismatchEntry, `fix: make both name the same server: the AAAA record for 198.18.0.7 is ${translate('198.18.0.7')}`);

  const unknown = await faithd6(['doctor', '-c', file, '--name', 'nowhere.test']);
  t.equal(unknown.code, 1);
  t.match(entry(unknown.out, 'name nowhere.test'), /^✗ name nowhere.test: no AAAA record \(\w+\)\n  fix: publish an AAAA record/);

  // A deny for part of a permitted range: the rest of the range may still reach the server,
  // and doctor finds a client there (not just the range's first address, which is denied).
  const carved = await configFile(t, {
    rules: [
      { action: 'deny', from: ['2001:db8::/48'], to: ['198.18.0.0/16'] },
      { action: 'permit', from: ['2001:db8::/32'], to: ['198.18.0.0/16'], ports: [6100] },
    ],
  });
  const partly = await faithd6(['doctor', '-c', carved, '--name', 'permitted.test']);
  t.equal(partly.code, 0, partly.out);
  t.match(partly.out, `✓ name permitted.test: ${ADDR.server4} is permitted: port 6100 by rule 2 (from 2001:db8::/32, e.g. 2001:db8:8000::)`);
});

t.test('an invalid config: ✗ first, host checks still run, exit 78', async (t) => {
  const file = join(t.testdir(), 'bad.yaml');
  await writeFile(file, `prefixes: [${PREFIX}]\nservices:\n  - port: 5999\nrules:\n  - action: allow\n    to: [198.18.0.0/16]\n`);
  const result = await faithd6(['doctor', '-c', file, '--name', 'permitted.test']);
  t.equal(result.code, 78);
  t.match(result.lines[0], `✗ config ${file}: invalid:`);
  t.match(result.out, `\n    ${file}:5:`);
  t.match(result.out, 'rules[0].action');
  t.match(result.out, `\n  fix: correct the file`);
  t.match(entry(result.out, 'IPv6'), '✓ IPv6: enabled');
  t.match(entry(result.out, 'forwarding'), '✓ forwarding');
  t.notMatch(result.out, 'local route', 'checks that need the config are skipped');
});

t.test("the config file's warnings are notes under its ✓", async (t) => {
  const file = await configFile(t, { rules: [] });
  const result = await faithd6(['doctor', '-c', file]);
  t.match(
    entry(result.out, 'config'),
    /^✓ config .*: valid: .*0 rules.*\n  note: warning: .*faithd6\.yaml:\d+:\d+: rules: no rules: every connection will be denied$/,
  );
});

t.test('help lists the checks and the exit statuses', async (t) => {
  const help = await faithd6(['doctor', '--help']);
  t.equal(help.code, 0);
  t.match(help.out, '--name <host>');
  t.match(help.out, 'accept_ra=2');
  t.match(help.out, 'Exit status: 0 every check passed, 1 some check failed, 78 the config file is invalid.');
});
