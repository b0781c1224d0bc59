// `faithd6 route up|down` as systemd's ExecStartPre=+ / ExecStopPost=+ run it, in the
// translator's namespace: routes marked proto 70, idempotent both ways, an operator's route
// never removed, and failures that say what is wrong with the right exit status.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { stringify } from 'yaml';
import { CLI, PERMIT_CLIENT_TO_S4 } from '../fixtures/daemon.js';
import { buildNetwork, PREFIX, type Host } from '../fixtures/netns.js';

const net = await buildNetwork(t);

/** A second prefix, which the operator owns in some tests. */
const OTHER = '2001:db8:5999::/96';

function configFile(t: Test, settings: Record<string, unknown> = {}): Promise<string> {
  const file = join(t.testdir(), 'faithd6.yaml');
  const text = stringify({ prefixes: [PREFIX, OTHER], route: 'manage', services: [{ port: 5999 }], rules: [PERMIT_CLIENT_TO_S4], ...settings });
  return writeFile(file, text).then(() => file);
}

/** Runs `faithd6 ARGS` in a host (xl unless told), optionally under a wrapper command; never throws on a non-zero exit. */
async function faithd6(args: string[], opts: { host?: Host; wrap?: string[] } = {}) {
  const [cmd, ...rest] = [...(opts.wrap ?? []), process.execPath, CLI, ...args];
  const proc = net.spawn(opts.host ?? 'xl', cmd!, rest, { label: `faithd6 ${args.join(' ')}`, inheritNodeOptions: true });
  const exit = await proc.waitExit(20_000);
  const out = proc.lines.map((l) => (typeof l.raw === 'string' ? l.raw : JSON.stringify(l))).join('\n');
  return { code: exit.code, out, err: proc.stderr };
}

/** The local table's routes for a prefix, as `ip` prints them (proto included). */
async function routes(prefix: string, host: Host = 'xl'): Promise<string> {
  return (await net.run(host, 'ip', ['-6', 'route', 'show', 'table', 'local', 'exact', prefix])).stdout.trim();
}

async function cleanRoutes(): Promise<void> {
  for (const prefix of [PREFIX, OTHER]) {
    while ((await routes(prefix)) !== '') await net.run('xl', 'ip', ['-6', 'route', 'del', 'local', prefix, 'table', 'local']);
  }
}

t.test('up adds each route with proto 70; a second up changes nothing', async (t) => {
  t.teardown(cleanRoutes);
  const file = await configFile(t);
  const first = await faithd6(['route', 'up', '-c', file]);
  t.equal(first.code, 0, first.err);
  t.equal(first.out, `added local ${PREFIX} dev lo\nadded local ${OTHER} dev lo`);
  t.match(await routes(PREFIX), /^local 64:ff9b:1::\/96 dev lo proto 70 /);
  t.match(await routes(OTHER), /^local 2001:db8:5999::\/96 dev lo proto 70 /);

  const again = await faithd6(['route', 'up', '-c', file]);
  t.equal(again.code, 0, again.err);
  t.equal(again.out, `local ${PREFIX} dev lo: already present (added by faithd6)\nlocal ${OTHER} dev lo: already present (added by faithd6)`);
  t.equal((await routes(PREFIX)).split('\n').length, 1, 'still one route');
});

t.test("down removes faithd6's routes; a second down finds none", async (t) => {
  t.teardown(cleanRoutes);
  const file = await configFile(t);
  t.equal((await faithd6(['route', 'up', '-c', file])).code, 0);
  const down = await faithd6(['route', 'down', '-c', file]);
  t.equal(down.code, 0, down.err);
  t.equal(down.out, `removed local ${PREFIX} dev lo\nremoved local ${OTHER} dev lo`);
  t.equal(await routes(PREFIX), '');
  t.equal(await routes(OTHER), '');
  const again = await faithd6(['route', 'down', '-c', file]);
  t.equal(again.code, 0, again.err);
  t.equal(again.out, `local ${PREFIX}: not present\nlocal ${OTHER}: not present`);
});

t.test("an operator's route (not proto 70) is left alone by up and down, and reported", async (t) => {
  t.teardown(cleanRoutes);
  const file = await configFile(t);
  await net.run('xl', 'ip', ['-6', 'route', 'add', 'local', OTHER, 'dev', 'lo']);
  const up = await faithd6(['route', 'up', '-c', file]);
  t.equal(up.code, 0, up.err);
  t.equal(up.out, `added local ${PREFIX} dev lo\nlocal ${OTHER}: present, not added by faithd6: left as it is`);
  t.notMatch(await routes(OTHER), 'proto 70', "the operator's route is not replaced");

  const down = await faithd6(['route', 'down', '-c', file]);
  t.equal(down.code, 0, down.err);
  t.equal(down.out, `removed local ${PREFIX} dev lo\nlocal ${OTHER}: present, not added by faithd6: left as it is`);
  t.equal(await routes(PREFIX), '');
  t.match(await routes(OTHER), /^local 2001:db8:5999::\/96 dev lo /, "the operator's route is still there");
});

t.test('route: external leaves the routes to the operator', async (t) => {
  t.teardown(cleanRoutes);
  const file = await configFile(t, { route: 'external' });
  for (const verb of ['up', 'down']) {
    const result = await faithd6(['route', verb, '-c', file]);
    t.equal(result.code, 0, result.err);
    t.match(result.out, 'route: external');
    t.match(result.out, 'nothing done');
  }
  t.equal(await routes(PREFIX), '');
});

t.test('a bad config file: exit 78 naming file:line:col and key; no route added', async (t) => {
  const file = join(t.testdir(), 'bad.yaml');
  await writeFile(file, `prefixes: [${PREFIX}]\nservices:\n  - port: 5999\nrules:\n  - action: allow\n    to: [198.18.0.0/16]\n`);
  for (const verb of ['up', 'down']) {
    const result = await faithd6(['route', verb, '-c', file]);
    t.equal(result.code, 78, `route ${verb}`);
    t.match(result.err, `${file}:5:`);
    t.match(result.err, 'rules[0].action');
    t.equal(result.out, '');
  }
  const missing = await faithd6(['route', 'up', '-c', join(t.testdir(), 'nonexistent.yaml')]);
  t.equal(missing.code, 78);
  t.match(missing.err, /cannot read .*nonexistent\.yaml/);
  t.equal(await routes(PREFIX), '');
});

t.test('without CAP_NET_ADMIN: exit 77, naming the prefix and what is needed', async (t) => {
  t.teardown(cleanRoutes);
  const file = await configFile(t);
  // Root without CAP_NET_ADMIN in its bounding and inheritable sets: the exec'd node (and
  // the ip it runs) lose it.
  const wrap = ['setpriv', '--bounding-set', '-net_admin', '--inh-caps', '-net_admin'];
  const up = await faithd6(['route', 'up', '-c', file], { wrap });
  t.equal(up.code, 77, up.err);
  t.match(up.err, `cannot add the local route for ${PREFIX}`);
  t.match(up.err, 'CAP_NET_ADMIN');
  t.equal(await routes(PREFIX), '', 'nothing added');

  t.equal((await faithd6(['route', 'up', '-c', file])).code, 0);
  const down = await faithd6(['route', 'down', '-c', file], { wrap });
  t.equal(down.code, 77, down.err);
  t.match(down.err, `cannot remove the local route for ${PREFIX}`);
  t.match(down.err, 'CAP_NET_ADMIN');
  t.match(await routes(PREFIX), 'proto 70', 'the route is still there');
});

t.test('IPv6 disabled (the IPv4-only s4): exit 1 saying so', async (t) => {
  const file = await configFile(t);
  const up = await faithd6(['route', 'up', '-c', file], { host: 's4' });
  t.equal(up.code, 1, up.err);
  t.match(up.err, `cannot add the local route for ${PREFIX}: IPv6 is disabled (net.ipv6.conf.all.disable_ipv6 = 1`);
  t.match(up.err, 'sysctl -w net.ipv6.conf.all.disable_ipv6=0');
});

t.test('no ip command: exit 1 saying iproute2 is needed', async (t) => {
  const file = await configFile(t);
  const up = await faithd6(['route', 'up', '-c', file], { wrap: ['env', 'PATH=/nonexistent'] });
  t.equal(up.code, 1, up.err);
  t.match(up.err, 'the ip command is not installed; faithd6 needs iproute2');
});

t.test('help explains proto 70 and the systemd lines', async (t) => {
  const help = await faithd6(['route', '--help']);
  t.equal(help.code, 0);
  t.match(help.out, 'proto 70');
  t.match(help.out, 'ExecStartPre=+faithd6 route up');
  const upHelp = await faithd6(['route', 'up', '--help']);
  t.equal(upHelp.code, 0);
  t.match(upHelp.out, 'already present (added by faithd6)');
  const unknown = await faithd6(['route', 'up', '--bogus']);
  t.equal(unknown.code, 64, 'a usage error in a subcommand is EX_USAGE, not a crash');
  t.match(unknown.err, '--bogus');
});
