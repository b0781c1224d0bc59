import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { main } from '../../src/cli/main.js';

/** Runs the CLI in-process; returns its exit status and what it printed. */
async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, {
    stdout: { write: (s: string) => ((out += s), true) },
    stderr: { write: (s: string) => ((err += s), true) },
  });
  return { code, out, err };
}

const EXAMPLE = new URL('../../etc/faithd6.yaml', import.meta.url).pathname;

function configFile(t: Test, text: string): string {
  const file = join(t.testdir(), 'faithd6.yaml');
  writeFileSync(file, text);
  return file;
}

const VALID = `prefixes: [2001:db8:5999::/96]
services:
  - port: 5999
rules:
  - action: permit
    to: [192.0.2.10/32]
`;

t.test('check: a valid file prints what it means and exits 0', async (t) => {
  const file = configFile(t, VALID);
  const { code, out, err } = await cli('check', '-c', file);
  t.equal(code, 0, err);
  t.match(out, '2001:db8:5999::/96');
  t.match(out, /permit .*192\.0\.2\.10\/32/);
  t.match(out, 'otherwise: deny');
});

t.test('check: the shipped example is valid', async (t) => {
  const { code, err } = await cli('check', '-q', '-c', EXAMPLE);
  t.equal(code, 0, err);
});

t.test('check: an invalid file exits 78 naming file, line and key', async (t) => {
  const file = configFile(t, VALID.replace('port: 5999', 'port: 70000'));
  const { code, err } = await cli('check', '-c', file);
  t.equal(code, 78);
  t.match(err, `${file}:3:`);
  t.match(err, 'services[0].port');
});

t.test('check: a missing file exits 78 and says why', async (t) => {
  const { code, err } = await cli('check', '-c', '/nonexistent/faithd6.yaml');
  t.equal(code, 78);
  t.match(err, '/nonexistent/faithd6.yaml');
});

t.test('translate: IPv4 to the translated IPv6 address and back', async (t) => {
  const file = configFile(t, VALID);
  const forward = await cli('translate', '-c', file, '192.0.2.10');
  t.equal(forward.code, 0);
  t.equal(forward.out, '2001:db8:5999::c000:20a\n');
  const back = await cli('translate', '-c', file, '2001:db8:5999::c000:20a');
  t.equal(back.code, 0);
  t.equal(back.out, '192.0.2.10\n');
});

t.test('translate: --prefix needs no config file, and takes any RFC 6052 length', async (t) => {
  const r = await cli('translate', '--prefix', '2001:db8:122::/48', '-c', '/nonexistent', '192.0.2.33');
  t.equal(r.code, 0, r.err);
  t.equal(r.out, '2001:db8:122:c000:2:2100::\n', 'RFC 6052 section 2.4 example');
  const bad = await cli('translate', '--prefix', '2001:db8::/95', '192.0.2.33');
  t.equal(bad.code, 64);
  t.match(bad.err, '/95');
});

t.test('translate: an address outside every prefix fails', async (t) => {
  const file = configFile(t, VALID);
  const r = await cli('translate', '-c', file, '2001:db8:1::c000:20a');
  t.equal(r.code, 1);
  t.match(r.err, 'not a translated address');
  const junk = await cli('translate', '-c', file, 'example.org');
  t.equal(junk.code, 64);
  t.match(junk.err, 'neither an IPv4 nor an IPv6 address');
});

t.test('usage errors exit 64; --help and --version exit 0', async (t) => {
  const unknown = await cli('frobnicate');
  t.equal(unknown.code, 64);
  t.match(unknown.err, 'unknown command');
  const help = await cli('--help');
  t.equal(help.code, 0);
  for (const verb of ['run', 'check', 'translate']) t.match(help.out, verb);
  t.match(help.out, '78');
  const version = await cli('--version');
  t.equal(version.code, 0);
  t.match(version.out, /^\d+\.\d+\.\d+/);
  const verbHelp = await cli('translate', '--help');
  t.equal(verbHelp.code, 0);
  t.match(verbHelp.out, 'AAAA');
});
