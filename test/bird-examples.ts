// The BIRD configs of the README's "More than one host" are the shipped examples under etc/bird/
// (which test/netns/anycast*.ts run, with only addresses changed), and BIRD accepts those files.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { ROOT } from './fixtures/netns.js';
import { requireBird } from './fixtures/bird.js';

requireBird();
const execFileP = promisify(execFile);
const readme = await readFile(join(ROOT, 'README.md'), 'utf8');

/** A config's directives: its lines without comments and blank lines, trimmed. */
function directives(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

for (const name of ['translator.conf', 'router.conf']) {
  t.test(`etc/bird/${name}`, async (t) => {
    const file = join(ROOT, 'etc', 'bird', name);
    const shipped = await readFile(file, 'utf8');
    // The README shows it in the ```conf block after its link.
    const link = readme.indexOf(`(etc/bird/${name})`);
    t.ok(link > 0, `the README links etc/bird/${name}`);
    const block = /```conf\n([\s\S]*?)```/.exec(readme.slice(link));
    t.ok(block, 'and shows a conf block after the link');
    t.same(directives(block?.[1] ?? ''), directives(shipped), 'the README shows the shipped file, without its comments');
    const parsed = await execFileP('bird', ['-p', '-c', file]).then(
      () => 'parsed',
      (err: { stderr?: string }) => err.stderr,
    );
    t.equal(parsed, 'parsed', `bird -p -c ${file}`);
  });
}
