// `faithd6 run` as an operator meets it when something is wrong: a bad config file, a port
// that is taken, a local route that was there before it. Each must fail (or not) visibly and
// leave nothing behind.
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { CLI, PERMIT_CLIENT_TO_S4, startDaemon } from '../fixtures/daemon.js';
import { buildNetwork, PREFIX } from '../fixtures/netns.js';

const net = await buildNetwork(t);

async function localRoutes(): Promise<string> {
  return (await net.run('xl', 'ip', ['-6', 'route', 'show', 'table', 'local'])).stdout;
}

/** Runs `faithd6 run -c FILE` in xl and waits for it to exit on its own. */
async function runToExit(configText: string) {
  const file = join(t.testdir(), `faithd6-${Math.random().toString(36).slice(2)}.yaml`);
  await writeFile(file, configText);
  const proc = net.spawn('xl', process.execPath, [CLI, 'run', '-c', file], { label: 'faithd6 run', inheritNodeOptions: true });
  const exit = await proc.waitExit(15_000);
  return { file, exit, stderr: proc.stderr, lines: proc.lines };
}

const config = (port: number) =>
  stringify({
    prefixes: [PREFIX],
    route: 'manage',
    services: [{ port }],
    rules: [PERMIT_CLIENT_TO_S4],
    runtimeDirectory: join(t.testdir(), 'run'),
  });

t.test('a bad config file: exit 78, the error names file:line:col and key, no route added', async (t) => {
  const text = config(5999).replace('port: 5999', 'port: 99999');
  const line = text.split('\n').findIndex((l) => l.includes('99999')) + 1;
  const { file, exit, stderr } = await runToExit(text);
  t.equal(exit.code, 78);
  t.match(stderr, `${file}:${line}:`);
  t.match(stderr, 'services[0].port');
  t.notMatch(await localRoutes(), PREFIX.replace('/96', ''), 'no local route left behind');
});

t.test('a port in use: exit 1 naming the port, route removed, no worker left', async (t) => {
  // Something else already listens on [::]:6100 in the translator's namespace.
  const squatter = net.spawn('xl', process.execPath, [
    '-e',
    `require('node:net').createServer().listen({ port: 6100, host: '::', ipv6Only: true }, () => console.log('{"event":"listening"}'))`,
  ]);
  await squatter.waitFor((l) => l.event === 'listening', { timeout: 5000, what: 'squatter listening' });
  t.teardown(() => squatter.stop());
  const { exit, stderr, lines } = await runToExit(config(6100));
  t.equal(exit.code, 1);
  t.match(stderr, /port 6100: address already in use/);
  t.ok(
    lines.some((l) => l.msg === 'local route removed'),
    'the route it added is removed again',
  );
  t.notMatch(await localRoutes(), PREFIX.replace('/96', ''), 'no local route left behind');
  for (const line of lines.filter((l) => l.msg === 'worker started')) {
    t.throws(() => process.kill(line.worker as number, 0), { code: 'ESRCH' }, `worker ${String(line.worker)} is gone`);
  }
  const left = execFileSync('ip', ['netns', 'pids', net.ns.xl], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  t.same(left, [squatter.pid], 'nothing of faithd6 is left in the namespace, only the other listener');
});

t.test('a local route that was there before is kept on stop', async (t) => {
  await net.run('xl', 'ip', ['-6', 'route', 'add', 'local', PREFIX, 'dev', 'lo']);
  t.teardown(() => net.run('xl', 'ip', ['-6', 'route', 'del', 'local', PREFIX, 'dev', 'lo', 'table', 'local']).catch(() => undefined));
  const daemon = await startDaemon(t, net, { services: [{ port: 6200 }] });
  t.notOk(
    daemon.proc.lines.some((l) => l.msg === 'local route added'),
    'it did not claim the route',
  );
  const exit = await daemon.stop();
  t.equal(exit.code, 0);
  t.match(await localRoutes(), `local ${PREFIX}`, "the operator's route is still there");
});
