import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { request } from '../../src/control/client.js';
import type { ControlRequest, ControlResponse } from '../../src/control/protocol.js';
import { ControlServer } from '../../src/control/server.js';
import { FaithdError } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';

const log = createLogger('silent');

/** A short directory of its own: socket paths are limited to 107 bytes, tap's test dirs are longer. */
function shortDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'f6c-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function serve(t: Test, handler: (req: ControlRequest) => Promise<ControlResponse>): Promise<string> {
  const path = join(shortDir(t), 'control.sock');
  const server = await ControlServer.listen(path, handler, log);
  t.teardown(() => server.close());
  return path;
}

t.test('a request gets its answer; the socket is 0600 whatever the umask', async (t) => {
  const seen: ControlRequest[] = [];
  const umask = process.umask(0);
  t.teardown(() => process.umask(umask));
  const path = await serve(t, async (req) => {
    seen.push(req);
    return { ok: false, error: 'hello' };
  });
  t.equal(statSync(path).mode & 0o777, 0o600);
  t.same(await request(path, { cmd: 'status' }), { ok: false, error: 'hello' });
  t.same(seen, [{ cmd: 'status' }]);
});

t.test('a handler that throws becomes an error answer, not a hang', async (t) => {
  const path = await serve(t, async () => {
    throw new Error('broken');
  });
  t.same(await request(path, { cmd: 'reload' }), { ok: false, error: 'broken' });
});

t.test('a line that is not JSON gets an error answer', async (t) => {
  const path = await serve(t, async () => ({ ok: false, error: 'unreachable' }));
  const socket = net.connect(path);
  let answer = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (answer += chunk));
  socket.write('status please\n');
  await new Promise((resolve) => socket.on('end', resolve));
  t.same(JSON.parse(answer), { ok: false, error: 'not a JSON request' });
});

t.test('close() removes the socket file', async (t) => {
  const path = join(shortDir(t), 'c.sock');
  const server = await ControlServer.listen(path, async () => ({ ok: false, error: '' }), log);
  await server.close();
  t.throws(() => statSync(path), { code: 'ENOENT' });
});

t.test('no socket, or a socket file nobody serves, means not running', async (t) => {
  const dir = shortDir(t);
  await t.rejects(request(join(dir, 'none.sock'), { cmd: 'status' }), { code: 'NOT_RUNNING' });
  // A socket file left by a daemon that died: connect() is refused.
  const stale = join(dir, 'stale.sock');
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(stale, resolve));
  const handle = (server as unknown as { _handle: { close(): void } })._handle;
  handle.close(); // close the listening socket but leave the file, as a SIGKILLed daemon does
  const err = await request(stale, { cmd: 'status' }).catch((e: unknown) => e);
  t.type(err, FaithdError);
  t.equal((err as FaithdError).code, 'NOT_RUNNING');
});

t.test('a daemon that does not answer in time is a failure, not "not running"', async (t) => {
  const path = join(shortDir(t), 'slow.sock');
  const server = net.createServer(() => {}); // accepts, never answers
  await new Promise<void>((resolve) => server.listen(path, resolve));
  t.teardown(() => server.close());
  const started = Date.now();
  const err = (await request(path, { cmd: 'status' }, 300).catch((e: unknown) => e)) as FaithdError;
  t.equal(err.code, 'CONTROL');
  t.match(err.message, 'no answer');
  t.ok(Date.now() - started < 2000);
});

t.test('an unreadable answer is reported as such', async (t) => {
  const path = join(shortDir(t), 'junk.sock');
  const server = net.createServer((s) => s.end('<html>\n'));
  await new Promise<void>((resolve) => server.listen(path, resolve));
  t.teardown(() => server.close());
  await t.rejects(request(path, { cmd: 'status' }), { message: /unreadable answer/ });
});

t.test('a socket path too long for sun_path is refused with a clear error', async (t) => {
  const path = join(shortDir(t), 'x'.repeat(120), 'control.sock');
  await t.rejects(
    ControlServer.listen(path, async () => ({ ok: false, error: '' }), log),
    { code: 'CONFIG', message: /longer than 107 bytes/ },
  );
});
