// The log lines' way out (src/log.ts): the lines of a turn leave at its end, a process that
// exits writes its last ones first, and a reader that falls behind loses none.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const LOG = fileURLToPath(new URL('../../dist/src/log.js', import.meta.url));

/** A node process running `body` with `log`, a logger of src/log.ts, at level info. */
function child(body: string): ReturnType<typeof spawn> {
  const script = `import { createLogger } from ${JSON.stringify(LOG)}; const log = createLogger('info'); ${body}`;
  return spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** What `proc` prints, read as it comes, or after `lateMs` without reading. */
async function lines(proc: ReturnType<typeof spawn>, lateMs = 0): Promise<{ lines: { msg: string; n?: number }[]; code: number | null }> {
  let text = '';
  proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
  if (lateMs > 0) {
    proc.stdout!.pause();
    setTimeout(() => proc.stdout!.resume(), lateMs);
  }
  const [code] = (await once(proc, 'close')) as [number | null];
  return {
    lines: text
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { msg: string; n?: number }),
    code,
  };
}

t.test('a process that exits in the turn it logged in writes those lines first', async (t) => {
  const r = await lines(child(`log.info('one'); log.info('two'); process.exit(3);`));
  t.same([r.code, r.lines.map((l) => l.msg)], [3, ['one', 'two']]);
});

t.test('an uncaught exception in the turn that logged: the lines before it are written', async (t) => {
  const r = await lines(child(`setTimeout(() => { log.info('before'); throw new Error('boom'); }, 10);`));
  t.same([r.code, r.lines.map((l) => l.msg)], [1, ['before']]);
});

t.test('a line is out before the process waits: it does not lag behind what it reports', async (t) => {
  const proc = child(`log.info('now'); setTimeout(() => {}, 20_000);`);
  t.teardown(() => proc.kill('SIGKILL'));
  const started = Date.now();
  const [chunk] = (await once(proc.stdout!.setEncoding('utf8'), 'data')) as [string];
  t.match(JSON.parse(chunk.split('\n')[0] as string), { msg: 'now', level: 'info' });
  t.ok(Date.now() - started < 10_000, 'long before the process stopped waiting');
});

t.test('a reader that falls behind: every line arrives, whole and in order', async (t) => {
  // 20,000 lines (about 2 MiB) in one turn into a pipe that holds 64 KiB, unread for 500 ms:
  // the writer meets a full pipe and must wait, not drop.
  const COUNT = 20_000;
  const proc = child(`const pad = 'x'.repeat(64); for (let n = 0; n < ${COUNT}; n++) log.info({ n, pad }, 'line');`);
  const r = await lines(proc, 500);
  t.equal(r.code, 0);
  t.equal(r.lines.length, COUNT, 'every line');
  t.ok(
    r.lines.every((l, i) => l.n === i),
    'in order',
  );
});

t.test("the close line written by hand is pino's line, byte for byte, and follows the level", async (t) => {
  // Through the same stream, in order: pino's line, then lineWriter's, for each set of fields;
  // then lineWriter at level warn, which writes nothing.
  const fields = [
    {
      client: '[2001:db8::1]:40000',
      dst: '2001:db8:5999::c000:20a',
      backend: '192.0.2.10:5999',
      up: 12,
      down: 0,
      ms: 3,
      end: 'reset by client',
      error: 'ECONNRESET',
    },
    { client: '[2001:db8::2]:1', dst: '64:ff9b:1::c612:1', backend: '198.18.0.1:5000', up: 2 ** 40, down: 64, ms: 0, end: 'fin', error: undefined },
  ];
  const proc = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { createLogger, lineWriter } from ${JSON.stringify(LOG)};
       const log = createLogger('info', { port: 5999 });
       const write = lineWriter(log, 'relay closed');
       for (const f of ${JSON.stringify(fields)}) { log.info(f, 'relay closed'); write(f); }
       log.level = 'warn';
       write(${JSON.stringify(fields[0])});`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let text = '';
  proc.stdout.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
  await once(proc, 'close');
  // The time is the one field the two may not share (a millisecond may pass between them).
  const lines = text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.replace(/"time":"[^"]*"/, '"time":"T"'));
  t.equal(lines.length, 4, 'two lines for each set of fields, none at level warn');
  t.equal(lines[1], lines[0], 'with an error');
  t.equal(lines[3], lines[2], 'without one');
  t.match(JSON.parse(lines[0] as string), { level: 'info', port: 5999, error: 'ECONNRESET', msg: 'relay closed' });
  t.notOk('error' in JSON.parse(lines[2] as string), 'no error field when there is none');
});
