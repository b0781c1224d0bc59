import { Writable } from 'node:stream';
import { pino } from 'pino';
import t from 'tap';
import { LogLimiter } from '../../src/worker/log-limiter.js';

function capture(): { log: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'info' }, stream), lines };
}

t.test('a burst is written, the rest summarised by kind once per interval', async (t) => {
  const { log, lines } = capture();
  const limiter = new LogLimiter(log, 3, 60_000);
  for (let i = 0; i < 10; i++) limiter.info({ i }, 'relay closed', i % 2 ? 'denied' : 'limit');
  t.equal(lines.length, 3, 'only the burst');
  t.same(
    lines.map((l) => l.i),
    [0, 1, 2],
  );
  limiter.flush();
  t.equal(lines.length, 4);
  t.same(lines[3]?.suppressed, { denied: 4, limit: 3 });
  t.equal(lines[3]?.msg, 'log lines suppressed (rate limit)');
  limiter.info({ i: 10 }, 'relay closed', 'denied');
  t.equal(lines.length, 5, 'a new interval writes again');
  limiter.flush();
  t.equal(lines.length, 5, 'nothing suppressed, no summary');
});

t.test('the interval ends by itself', async (t) => {
  const { log, lines } = capture();
  const limiter = new LogLimiter(log, 1, 50);
  limiter.info({}, 'a', 'x');
  limiter.info({}, 'b', 'x');
  await new Promise((resolve) => setTimeout(resolve, 120));
  t.equal(lines.at(-1)?.msg, 'log lines suppressed (rate limit)');
  t.same(lines.at(-1)?.suppressed, { x: 1 });
});
