// Bytes through the translator: 64 MiB each way at once and one way, each timed
// against the same transfer without the translator; half-close both ways.
import t, { type Test as Tap } from 'tap';
import { ADDR, buildNetwork, isDone, translate } from '../fixtures/netns.js';
import { fromClientPort, portOf, startDaemon } from '../fixtures/daemon.js';

const MiB = 1024 * 1024;
const PORT = 5999;
const DST6 = translate(ADDR.server4);

const net = await buildNetwork(t);
const daemon = await startDaemon(t, net, { services: [{ port: PORT }], timeouts: { connect: '1s' } });

/** Start a server in s4 and wait until it listens. */
async function server(args: string[]) {
  const proc = net.peer('s4', ['server', ...args, '--host', ADDR.server4, '--port', String(PORT), '--timeout', '60']);
  await proc.waitFor((l) => l.event === 'listening', { timeout: 5000, what: 'listening' });
  return proc;
}

const ROUNDS = 2;

/**
 * 64 MiB from a client in xl straight to s4 over IPv4, then from c6 through the
 * translator, alternately ROUNDS times; checks every transfer and returns the times.
 */
async function compare(t: Tap, serverMode: string[], eachWay: boolean): Promise<{ direct: number[]; via: number[] }> {
  const size = 64 * MiB;
  const srv = await server(serverMode);
  t.teardown(() => srv.stop());
  const times = { direct: [] as number[], via: [] as number[] };
  let conn = 0;
  for (let round = 0; round < ROUNDS; round++) {
    for (const path of ['direct', 'via'] as const) {
      const label = `${path === 'direct' ? 'direct' : 'via faithd6'} #${round + 1}`;
      const client =
        path === 'direct'
          ? net.peer('xl', ['client', 'send', '64M', '--host', ADDR.server4, '--port', String(PORT), '--timeout', '40'])
          : net.peer('c6', ['client', 'send', '64M', '--host', DST6, '--port', String(PORT), '--timeout', '40']);
      const c = await client.waitFor(isDone(), { timeout: 45_000, what: `${label}: client done` });
      const s = await srv.waitFor(isDone(conn++), { timeout: 5000, what: `${label}: server done` });
      t.equal(c.end, 'eof', `${label}: client ends with EOF`);
      t.equal(s.end, 'eof', `${label}: server ends with EOF`);
      t.equal(s.received, size, `${label}: server received 64 MiB`);
      t.equal(s.receivedSha, c.sentSha, `${label}: client→server sha256 equal`);
      if (eachWay) {
        t.equal(c.received, size, `${label}: client received 64 MiB`);
        t.equal(c.receivedSha, s.sentSha, `${label}: server→client sha256 equal`);
      }
      if (path === 'via') {
        t.equal(s.remote, `${ADDR.xl4}:${portOf(s.remote)}`, `${label}: the server saw the translator as its client`);
        const log = await daemon.waitClosed(fromClientPort(portOf(c.local)), 5000);
        const expected = { end: 'fin', up: size, down: eachWay ? size : 0, dst: DST6, backend: `${ADDR.server4}:${PORT}` };
        t.match(log, expected, `${label}: its log line has exact byte counts`);
      }
      times[path].push(Number(c.ms));
    }
  }
  return times;
}

function figures(times: number[], eachWay: boolean): string {
  const best = Math.min(...times);
  const all = times.map((ms) => (ms / 1000).toFixed(2)).join(', ');
  return `${(best / 1000).toFixed(2)} s = ${(64 / (best / 1000)).toFixed(0)} MiB/s${eachWay ? ' each way' : ''} (runs: ${all} s)`;
}

t.test('64 MiB each way at once: sha256 equal at both ends; direct vs translated', async (t) => {
  const { direct, via } = await compare(t, ['send', '64M'], true);
  t.comment(`64 MiB each way at once, direct xl→s4 (IPv4):       ${figures(direct, true)}`);
  t.comment(`64 MiB each way at once, c6→faithd6→s4 (IPv6→IPv4): ${figures(via, true)}`);
});

t.test('64 MiB one way: direct vs translated', async (t) => {
  const { direct, via } = await compare(t, ['sink'], false);
  t.comment(`64 MiB one way, direct xl→s4 (IPv4):       ${figures(direct, false)}`);
  t.comment(`64 MiB one way, c6→faithd6→s4 (IPv6→IPv4): ${figures(via, false)}`);
});

t.test('half-close: client sends and FINs, server reads to EOF, then replies 1 MiB', async (t) => {
  const srv = await server(['halfclose-reply', '1M']);
  t.teardown(() => srv.stop());
  const client = net.peer('c6', ['client', 'send', '1M', '--host', DST6, '--port', String(PORT), '--timeout', '20']);
  const c = await client.waitFor(isDone(), { timeout: 20_000 });
  const s = await srv.waitFor(isDone(0), { timeout: 5000 });
  t.equal(s.eof, true, 'server saw EOF (the client FIN came through)');
  t.equal(s.received, MiB, 'server got 1 MiB before EOF');
  t.equal(s.receivedSha, c.sentSha, 'sha256 equal client→server');
  t.equal(c.end, 'eof', 'client got the whole reply and then EOF, no reset');
  t.equal(c.received, MiB, 'client got 1 MiB after it had shut down writing');
  t.equal(c.receivedSha, s.sentSha, 'sha256 equal server→client');
  t.ok(Number(c.firstByteMs) >= 0, 'reply arrived');
  const log = await daemon.waitClosed(fromClientPort(portOf(c.local)), 5000);
  t.match(log, { end: 'fin', up: MiB, down: MiB });
});

t.test('half-close, mirror: server sends and FINs, client reads to EOF, then replies 1 MiB', async (t) => {
  const srv = await server(['send', '1M']);
  t.teardown(() => srv.stop());
  const client = net.peer('c6', ['client', 'halfclose-reply', '1M', '--host', DST6, '--port', String(PORT), '--timeout', '20']);
  const c = await client.waitFor(isDone(), { timeout: 20_000 });
  const s = await srv.waitFor(isDone(0), { timeout: 5000 });
  t.equal(c.eof, true, 'client saw EOF (the server FIN came through)');
  t.equal(c.received, MiB, 'client got 1 MiB before EOF');
  t.equal(c.receivedSha, s.sentSha, 'sha256 equal server→client');
  t.equal(s.end, 'eof', 'server got the whole reply and then EOF, no reset');
  t.equal(s.received, MiB, 'server got 1 MiB after it had shut down writing');
  t.equal(s.receivedSha, c.sentSha, 'sha256 equal client→server');
  const log = await daemon.waitClosed(fromClientPort(portOf(c.local)), 5000);
  t.match(log, { end: 'fin', up: MiB, down: MiB });
});

t.test('SIGTERM stops the daemon with exit status 0 and it removes its local route', async (t) => {
  const routes = async (): Promise<string> => (await net.run('xl', 'ip', ['-6', 'route', 'show', 'table', 'local', '64:ff9b:1::/96'])).stdout.trim();
  t.match(await routes(), /^local 64:ff9b:1::\/96 dev lo/, 'while running: local route for the prefix');
  const exit = await daemon.stop();
  t.same(exit, { code: 0, signal: null });
  t.equal(await routes(), '', 'after exit: route gone');
});
