// The route functions the supervisor and `faithd6 route` use, called for real inside the
// translator's namespace (a route change needs a namespace of its own): what they return, that
// they mark routes proto 70, never remove another's route, and undo a half-done add.
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import t from 'tap';
import { buildNetwork, PREFIX, ROOT, type Host } from '../fixtures/netns.js';

const net = await buildNetwork(t);
const MODULE = pathToFileURL(join(ROOT, 'dist', 'src', 'system', 'route.js')).href;
const OTHER = '2001:db8:5999::/96';

// Calls one export of the built module with JSON arguments and prints its result or error.
const DRIVER = `
const [module, call] = process.argv.slice(1);
const [name, ...args] = JSON.parse(call);
try {
  const result = await (await import(module))[name](...args);
  console.log(JSON.stringify({ result: result ?? null }));
} catch (err) {
  console.log(JSON.stringify({ error: { name: err.name, code: err.code, message: err.message } }));
}`;

interface Outcome {
  result?: unknown;
  error?: { name: string; code: string; message: string };
}

async function call(name: string, args: unknown[], host: Host = 'xl'): Promise<Outcome> {
  const proc = net.spawn(host, process.execPath, ['--input-type=module', '-e', DRIVER, MODULE, JSON.stringify([name, ...args])], {
    label: `route.${name}`,
    inheritNodeOptions: true,
  });
  const exit = await proc.waitExit(20_000);
  if (exit.code !== 0 || proc.lines.length !== 1) throw new Error(`route.${name}: ${JSON.stringify(exit)} ${proc.stderr}`);
  return proc.lines[0] as Outcome;
}

async function routes(prefix: string): Promise<string> {
  return (await net.run('xl', 'ip', ['-6', 'route', 'show', 'table', 'local', 'exact', prefix])).stdout.trim();
}

async function cleanRoutes(): Promise<void> {
  for (const prefix of [PREFIX, OTHER]) {
    while ((await routes(prefix)) !== '') await net.run('xl', 'ip', ['-6', 'route', 'del', 'local', prefix, 'table', 'local']);
  }
}

t.test('addLocalRoutes returns what it added in this call, marked proto 70', async (t) => {
  t.teardown(cleanRoutes);
  t.same(await call('localRouteState', [PREFIX]), { result: 'absent' });
  t.same(await call('addLocalRoutes', [[PREFIX, OTHER]]), { result: [PREFIX, OTHER] });
  t.match(await routes(PREFIX), 'proto 70');
  t.same(await call('localRouteState', [PREFIX]), { result: 'ours' });
  t.same(await call('addLocalRoutes', [[PREFIX, OTHER]]), { result: [] }, 'nothing new: nothing for the caller to remove');
  t.same(await call('removeLocalRoutes', [[PREFIX, OTHER]]), {
    result: [
      { prefix: PREFIX, outcome: 'removed' },
      { prefix: OTHER, outcome: 'removed' },
    ],
  });
  t.same(await call('removeLocalRoutes', [[PREFIX]]), { result: [{ prefix: PREFIX, outcome: 'absent' }] });
  t.same(await call('localRouteState', [PREFIX]), { result: 'absent' });
});

t.test("an operator's route is neither claimed nor removed", async (t) => {
  t.teardown(cleanRoutes);
  await net.run('xl', 'ip', ['-6', 'route', 'add', 'local', OTHER, 'dev', 'lo']);
  t.same(await call('localRouteState', [OTHER]), { result: 'foreign' });
  t.same(await call('installLocalRoutes', [[PREFIX, OTHER]]), {
    result: [
      { prefix: PREFIX, outcome: 'added' },
      { prefix: OTHER, outcome: 'foreign' },
    ],
  });
  // A caller that passes it anyway (say, a stale list) still cannot remove it.
  t.same(await call('removeLocalRoutes', [[PREFIX, OTHER]]), {
    result: [
      { prefix: PREFIX, outcome: 'removed' },
      { prefix: OTHER, outcome: 'foreign' },
    ],
  });
  t.match(await routes(OTHER), /^local 2001:db8:5999::\/96 dev lo/);
});

t.test('a failed add undoes the routes added before it in the same call', async (t) => {
  t.teardown(cleanRoutes);
  const outcome = await call('addLocalRoutes', [[PREFIX, '2001:db8:zz::/96']]);
  t.match(outcome.error, { name: 'FaithdError', code: 'ROUTE', message: /cannot look up the local route for 2001:db8:zz::\/96/ });
  t.equal(await routes(PREFIX), '', 'the first prefix was removed again');
});

t.test('IPv6 disabled: ROUTE error that says so (s4 has IPv6 off)', async (t) => {
  t.same(await call('ipv6DisabledReason', []), { result: null }, 'xl has IPv6');
  const reason = await call('ipv6DisabledReason', [], 's4');
  t.match(reason.result, /^IPv6 is disabled \(net\.ipv6\.conf\.all\.disable_ipv6 = 1, net\.ipv6\.conf\.lo\.disable_ipv6 = 1\)$/);
  const outcome = await call('addLocalRoutes', [[PREFIX]], 's4');
  t.match(outcome.error, { code: 'ROUTE', message: /cannot add the local route for 64:ff9b:1::\/96: IPv6 is disabled/ });
});

t.test('no CAP_NET_ADMIN: NO_PERMISSION naming the prefix and the capability', async (t) => {
  t.teardown(cleanRoutes);
  const proc = net.spawn(
    'xl',
    'setpriv',
    [
      '--bounding-set',
      '-net_admin',
      '--inh-caps',
      '-net_admin',
      process.execPath,
      '--input-type=module',
      '-e',
      DRIVER,
      MODULE,
      JSON.stringify(['addLocalRoutes', [PREFIX]]),
    ],
    { label: 'route.addLocalRoutes without CAP_NET_ADMIN', inheritNodeOptions: true },
  );
  await proc.waitExit(20_000);
  t.match(proc.lines[0], { error: { code: 'NO_PERMISSION', message: /64:ff9b:1::\/96: .*CAP_NET_ADMIN/ } });
  t.equal(await routes(PREFIX), '');
});
