import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { openDescriptors, openFileLimit } from '../../src/system/descriptors.js';

t.test('the soft limit is read from a limits file', async (t) => {
  const dir = t.testdir();
  const file = (text: string): string => {
    const path = join(dir, `limits-${Math.random()}`);
    writeFileSync(path, text);
    return path;
  };
  const header = 'Limit                     Soft Limit           Hard Limit           Units     \n';
  t.equal(openFileLimit(file(`${header}Max open files            64                   4096                 files     \n`)), 64);
  t.equal(openFileLimit(file(`${header}Max open files            unlimited            unlimited            files     \n`)), Number.MAX_SAFE_INTEGER);
  t.equal(openFileLimit(file(header)), undefined, 'no such line');
  t.equal(openFileLimit(join(dir, 'missing')), undefined, 'no such file');
  const own = openFileLimit();
  t.ok(own !== undefined && own > 0, `this process: ${own}`);
});

t.test('open descriptors are counted', async (t) => {
  const dir = join(t.testdir(), 'fd');
  mkdirSync(dir);
  for (const n of [0, 1, 2, 7]) writeFileSync(join(dir, String(n)), '');
  t.equal(openDescriptors(dir), 4);
  t.equal(openDescriptors(join(dir, 'none')), 0);
  t.ok(openDescriptors() >= 3, 'this process has at least stdin, stdout and stderr');
});
