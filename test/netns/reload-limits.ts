// Limits and timeouts in a reloaded file reach the workers: the next connections obey them,
// while the worker (and its listener) stays the same.
import { readFile, writeFile } from 'node:fs/promises';
import t from 'tap';
import { parse, stringify } from 'yaml';
import { startDaemon } from '../fixtures/daemon.js';
import { ADDR, buildNetwork, isDone, translate } from '../fixtures/netns.js';

const PORT = 5999;
const DST6 = translate(ADDR.server4);
const BURST = 20;

const net = await buildNetwork(t);
const daemon = await startDaemon(t, net, { services: [{ port: PORT }], limits: { newConnectionsPerSecond: 0 } });
const server = net.peer('s4', ['server', 'echo', '--host', ADDR.server4, '--port', String(PORT), '--timeout', '60']);
await server.waitFor((l) => l.event === 'listening', { timeout: 5000, what: 'listening' });

/** BURST connections from one source at once; how each ended, as the client saw it. */
async function burst(): Promise<Record<string, number>> {
  const client = net.peer('c6', ['client', 'echo', '1K', '--conns', String(BURST), '--barrier', '--host', DST6, '--port', String(PORT), '--timeout', '20']);
  await client.waitFor((l) => l.event === 'summary', { timeout: 20_000, what: 'client summary' });
  const ends: Record<string, number> = {};
  for (const done of client.filter(isDone())) ends[String(done.end)] = (ends[String(done.end)] ?? 0) + 1;
  return ends;
}

/** Rewrites the daemon's config file with `change` applied and sends SIGHUP; waits for the outcome. */
async function reloadWith(change: (config: Record<string, unknown>) => void): Promise<void> {
  const config = parse(await readFile(daemon.configFile, 'utf8')) as Record<string, unknown>;
  change(config);
  await writeFile(daemon.configFile, stringify(config));
  const from = daemon.proc.mark();
  daemon.proc.signal('SIGHUP');
  await daemon.proc.waitFor((l) => l.msg === 'reloaded', { timeout: 10_000, from, what: '"reloaded" log line' });
}

t.test('a reloaded rate limit applies to the next connections', async (t) => {
  const worker = daemon.workerPid(PORT);
  t.same(await burst(), { eof: BURST }, `before: all ${BURST} relayed (no rate limit)`);

  // One new connection a second, in bursts of two seconds' worth: 2 of the next burst pass.
  const from = daemon.proc.mark();
  await reloadWith((config) => {
    config.limits = { ...(config.limits as object), newConnectionsPerSecond: 1 };
  });
  const after = await burst();
  t.equal(after.eof, 2, `after: the bucket's 2 pass (${JSON.stringify(after)})`);
  t.equal(after.ECONNRESET, BURST - 2, 'the rest are reset, not closed cleanly');
  const limited = daemon.proc.filter((l) => l.msg === 'relay closed' && l.reason === 'new connections per source', from);
  t.ok(limited.length > 0, `logged as over the new limit (${limited.length} lines within the log rate)`);
  t.equal(daemon.workerPid(PORT), worker, 'the same worker: nothing was restarted to apply it');
});

t.test('a reloaded idle timeout applies to the next connection', async (t) => {
  await reloadWith((config) => {
    config.limits = { ...(config.limits as object), newConnectionsPerSecond: 0 };
    config.timeouts = { ...(config.timeouts as object), idle: '1s' };
  });
  const started = Date.now();
  const client = net.peer('c6', ['client', 'hold', '--host', DST6, '--port', String(PORT), '--timeout', '15']);
  const done = await client.waitFor(isDone(), { timeout: 15_000, what: 'the held connection to end' });
  t.equal(done.end, 'ECONNRESET', 'reset at the new idle timeout');
  t.ok(Date.now() - started < 8_000, `well before the old 2 h 4 min (${Date.now() - started} ms, node start-up included)`);
});
