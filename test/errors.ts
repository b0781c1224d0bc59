// The README's error-code table and exit-status sentence against src/errors.ts, as fastify
// checks its error docs: a code added, dropped or remapped in one place and not the other fails.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { ERROR_CODES, EXIT, FaithdError, exitCodeFor, type ErrorCode } from '../src/errors.js';
import { ROOT } from './fixtures/netns.js';

const readme = await readFile(join(ROOT, 'README.md'), 'utf8');

t.test('the README lists every error code once, with the exit status the CLI gives it', async (t) => {
  const rows = [...readme.matchAll(/^\| `([A-Z_]+)` \| (\d+) \| (.+) \|$/gm)].map(([, code, status, means]) => ({ code, status: Number(status), means }));
  t.same(
    rows.map((r) => r.code),
    Object.keys(ERROR_CODES),
    'the same codes, in the same order',
  );
  for (const row of rows) {
    const code = row.code as ErrorCode;
    t.equal(row.status, exitCodeFor(new FaithdError(code, 'x')), `${code}: exit status ${row.status}`);
    t.equal(row.means, ERROR_CODES[code], `${code}: the same meaning`);
  }
});

t.test('the exit-status sentence names every status there is', async (t) => {
  const sentence = /^Exit statuses follow sysexits\(3\) and LSB: (.+?)\./ms.exec(readme)?.[1]?.replace(/\s+/g, ' ') ?? '';
  t.ok(sentence !== '', 'the sentence is there');
  for (const [name, status] of Object.entries(EXIT)) t.match(sentence, new RegExp(`\\b${status} `), `${name} (${status})`);
  t.equal(exitCodeFor(new Error('not ours')), EXIT.FAILURE, 'an error that is not a FaithdError is a plain failure');
});
