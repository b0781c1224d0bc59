// A bounded fuzz loop over loadConfig: mutated valid configs, random bytes and random YAML.
// Every input must either load or be refused with a ConfigError whose message starts with the
// file name: never another error (a crash in the daemon's reload), never a hang. The seed is
// printed; FAITHD6_FUZZ_SEED=N repeats a run, FAITHD6_FUZZ_CASES=N runs more cases.
import { isUtf8 } from 'node:buffer';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { stringify } from 'yaml';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { uniform as prng } from '../fixtures/prng.js';

const SEED = Number(process.env.FAITHD6_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 32));
const CASES = Number(process.env.FAITHD6_FUZZ_CASES ?? 2000);
/** The loop stops early past this, so a slow machine cannot stretch the suite (unless asked for more cases). */
const BUDGET_MS = process.env.FAITHD6_FUZZ_CASES === undefined ? 10_000 : Infinity;
/** One input that takes longer than this counts as a hang. */
const CASE_BOUND_MS = 1000;

t.comment(`fuzz seed ${SEED} (repeat with FAITHD6_FUZZ_SEED=${SEED})`);

const rand = prng(SEED);
const below = (n: number): number => Math.floor(rand() * n);
const pick = <T>(list: readonly T[]): T => list[below(list.length)] as T;

const EXAMPLE = await readFile(fileURLToPath(new URL('../../etc/faithd6.yaml', import.meta.url)), 'utf8');
const MINIMAL = `prefixes: [2001:db8:5999::/96]
services:
  - port: 5999
rules:
  - action: permit
    to: 192.0.2.10
`;
/** Every top-level key, flow and block style, anchors and aliases, a tag, comments. */
const FULL = `# every key
prefixes:
  - 2001:db8:5999::/96
  - 64:ff9b::/96
route: external
services:
  - port: 5999
    backendPort: 6000
    workers: 2
  - {port: 554}
rules:
  - action: deny
    from: 2001:db8:bad::/48
    to: &servers [192.0.2.10, 198.51.100.0/24]
  - action: permit
    from: [2001:db8::/32, "::1"]
    to: *servers
    ports: [5999, 554]
  - {action: permit, to: 203.0.113.7/32, ports: 554}
timeouts: {connect: 10s, idle: 1h30m, halfClosed: 5m, drain: 500ms}
limits:
  connectionsPerWorker: 1000
log: {level: !!str debug}
user: faithd6
runtimeDirectory: /run/faithd6
`;
const VALID_CONFIGS = [EXAMPLE, MINIMAL, FULL];

const YAML_BITS = [
  ':',
  ': ',
  '- ',
  '-',
  '[',
  ']',
  '{',
  '}',
  ',',
  '&a ',
  '*a',
  '&',
  '*',
  '!',
  '!!str ',
  '!!map ',
  '!!binary ',
  '!x ',
  '|',
  '>-',
  "'",
  '"',
  '#',
  '? ',
  '---\n',
  '...\n',
  '<<: *a',
  '%YAML 1.2\n',
  '\t',
  ' ',
  '  ',
  '\n',
  '\r\n',
  '\\',
  '@',
  '`',
  '\u00a0',
  '\ufeff',
  '\u2028',
  'é',
  '🌐',
  '\0',
  '\x7f',
];
const KEYS = [
  'prefixes',
  'route',
  'services',
  'rules',
  'timeouts',
  'limits',
  'log',
  'user',
  'runtimeDirectory',
  'port',
  'backendPort',
  'workers',
  'action',
  'from',
  'to',
  'ports',
  'connect',
  'idle',
  'halfClosed',
  'drain',
  'connectionsPerWorker',
  'level',
  '<<',
  'x',
];
const SCALARS = [
  '2001:db8:5999::/96',
  '64:ff9b::/96',
  '::ffff:0:0/96',
  '2001:db8::',
  '2001:db8::/33',
  '192.0.2.10',
  '0.0.0.0/0',
  '127.0.0.1',
  '10.0.0.0/8',
  '::/0',
  '5999',
  '0',
  '-1',
  '65536',
  '99999999999999999999',
  '1e309',
  '0x10',
  '0o17',
  '.inf',
  '.nan',
  '~',
  'null',
  'true',
  'no',
  'permit',
  'deny',
  'manage',
  'external',
  'info',
  '10s',
  '1h30m',
  '30m1h',
  '1.5ms',
  '25d',
  'faithd6',
  'root',
  '/run/x',
  'relative/x',
  '""',
  "''",
  '"\\u0000"',
  '"\\ud800"',
  '"\\x41"',
  '!!int x',
  '!!float 1',
  '!!null',
  '!!timestamp 2001-12-14',
];

/** A random nested value built from the config's own vocabulary, for yaml's stringify. */
function randomValue(depth: number): unknown {
  const roll = rand();
  if (depth === 0 || roll < 0.35) {
    const scalar = pick(SCALARS);
    return rand() < 0.5 ? scalar : rand() < 0.5 ? Number(below(70_000)) : pick([true, false, null, 1.5, -0]);
  }
  if (roll < 0.65) return Array.from({ length: below(5) }, () => randomValue(depth - 1));
  return Object.fromEntries(Array.from({ length: below(6) }, () => [pick(KEYS), randomValue(depth - 1)]));
}

/** Random YAML text written by hand: block and flow mixed, anchors, aliases, tags. */
function randomYaml(depth: number, indent: string): string {
  const roll = rand();
  const props = rand() < 0.15 ? `&${pick(['a', 'b'])} ` : rand() < 0.1 ? `${pick(['!x', '!!str', '!!seq', '!!map'])} ` : '';
  if (depth === 0 || roll < 0.3) return props + (rand() < 0.1 ? `*${pick(['a', 'b', 'c'])}` : pick(SCALARS));
  if (roll < 0.45) {
    const items = Array.from({ length: below(4) }, () => randomYaml(depth - 1, '').replaceAll('\n', ' '));
    return `${props}${rand() < 0.5 ? `[${items.join(', ')}]` : `{${items.map((v) => `${pick(KEYS)}: ${v}`).join(', ')}}`}`;
  }
  const inner = `${indent}  `;
  const lines = Array.from({ length: 1 + below(4) }, () =>
    roll < 0.7 ? `${inner}- ${randomYaml(depth - 1, `${inner}  `).trimStart()}` : `${inner}${pick(KEYS)}: ${randomYaml(depth - 1, inner)}`,
  );
  return `${props}\n${lines.join('\n')}`;
}

/** A valid config with 1 to 4 random edits: bytes, lines or tokens. */
function mutated(): Buffer {
  let text = pick(VALID_CONFIGS);
  for (let edits = 1 + below(4); edits > 0; edits--) {
    const lines = text.split('\n');
    const line = below(lines.length);
    const at = below(text.length + 1);
    switch (below(9)) {
      case 0: // delete a line
        lines.splice(line, 1);
        text = lines.join('\n');
        break;
      case 1: // duplicate a line
        lines.splice(line, 0, lines[line] ?? '');
        text = lines.join('\n');
        break;
      case 2: // swap two lines
        [lines[line], lines[below(lines.length)]] = [lines[below(lines.length)] ?? '', lines[line] ?? ''];
        text = lines.join('\n');
        break;
      case 3: // re-indent a line
        lines[line] = rand() < 0.5 ? ` ${lines[line] ?? ''}` : (lines[line] ?? '').replace(/^ {1,2}/, '');
        text = lines.join('\n');
        break;
      case 4: {
        // swap two tokens
        const tokens = text.split(/(\s+)/);
        const i = below(tokens.length);
        const j = below(tokens.length);
        [tokens[i], tokens[j]] = [tokens[j] ?? '', tokens[i] ?? ''];
        text = tokens.join('');
        break;
      }
      case 5: {
        // replace a token with one from the vocabulary
        const tokens = text.split(/(\s+)/);
        tokens[below(tokens.length)] = pick([...KEYS.map((k) => `${k}:`), ...SCALARS, ...YAML_BITS]);
        text = tokens.join('');
        break;
      }
      case 6: // insert a YAML indicator or an odd character
        text = text.slice(0, at) + pick(YAML_BITS) + text.slice(at);
        break;
      case 7: // delete a few characters, or cut the file short
        text = rand() < 0.8 ? text.slice(0, at) + text.slice(at + 1 + below(8)) : text.slice(0, at);
        break;
      default: {
        // flip one bit of one byte (may leave invalid UTF-8); the last edit, as text ends here
        const bytes = Buffer.from(text);
        const i = below(bytes.length);
        bytes[i] = (bytes[i] ?? 0) ^ (1 << below(8));
        return bytes;
      }
    }
  }
  return Buffer.from(text);
}

function randomBytes(): Buffer {
  const length = below(4097);
  // Half anything, half printable ASCII and newlines, which gets further into the parser.
  if (rand() < 0.5) return Buffer.from(Array.from({ length }, () => below(256)));
  return Buffer.from(Array.from({ length }, () => (rand() < 0.08 ? 10 : 32 + below(95))));
}

function input(kind: string): Buffer {
  switch (kind) {
    case 'mutated config':
      return mutated();
    case 'random bytes':
      return randomBytes();
    case 'random YAML (stringify)':
      return Buffer.from(stringify(randomValue(5), { collectionStyle: rand() < 0.5 ? 'flow' : 'any' }));
    default:
      return Buffer.from(`${randomYaml(5, '').trimStart()}\n`);
  }
}

const KINDS = ['mutated config', 'mutated config', 'random bytes', 'random YAML (stringify)', 'random YAML (by hand)'];

t.test(`${CASES} random config files (seed ${SEED})`, async (t) => {
  const dir = t.testdir();
  const file = join(dir, 'faithd6.yaml');
  const verdicts: Record<string, number> = {};
  const failures: string[] = [];
  let slowest = { ms: 0, case: -1 };
  const started = performance.now();
  let done = 0;
  for (; done < CASES && performance.now() - started < BUDGET_MS; done++) {
    const kind = KINDS[done % KINDS.length] as string;
    const bytes = input(kind);
    // Through a file when the bytes are not UTF-8 (decoding is part of reading), and one case in
    // ten anyway; the others straight to the parser, as file system round trips dominate.
    const throughFile = !isUtf8(bytes) || done % 10 === 0;
    if (throughFile) await writeFile(file, bytes);
    const caseStarted = performance.now();
    let verdict: string;
    try {
      const { warnings } = throughFile ? await loadConfig(file) : parseConfig(bytes.toString('utf8'), file);
      verdict = 'loaded';
      const stray = warnings.find((w) => !w.startsWith(`${file}:`));
      if (stray !== undefined) failures.push(`case ${done}: a warning that does not start with the file: ${stray}`);
    } catch (err) {
      if (err instanceof ConfigError && err.message.startsWith(`${file}:`)) {
        verdict = 'ConfigError';
      } else {
        verdict = err instanceof ConfigError ? 'ConfigError not starting with the file' : `${(err as Error).name ?? typeof err}`;
        failures.push(`case ${done} (${kind}): ${verdict}: ${String((err as Error).stack ?? err).slice(0, 600)}`);
      }
    }
    const ms = performance.now() - caseStarted;
    if (ms > slowest.ms) slowest = { ms, case: done };
    if (ms > CASE_BOUND_MS) failures.push(`case ${done} (${kind}): took ${ms.toFixed(0)} ms`);
    if (failures.length > 0 && failures.at(-1)?.startsWith(`case ${done} `)) {
      failures.push(`  input (${bytes.length} bytes): ${JSON.stringify(bytes.toString('latin1').slice(0, 400))}`);
    }
    verdicts[`${kind}: ${verdict}`] = (verdicts[`${kind}: ${verdict}`] ?? 0) + 1;
  }
  const total = performance.now() - started;
  t.comment(`${done} cases in ${total.toFixed(0)} ms; slowest case ${slowest.case}: ${slowest.ms.toFixed(1)} ms`);
  for (const [verdict, count] of Object.entries(verdicts).sort()) t.comment(`${count} × ${verdict}`);
  t.same(failures, [], `every input loads or is refused with a ConfigError naming the file (seed ${SEED})`);
  t.ok(done >= Math.min(CASES, 200), `at least ${Math.min(CASES, 200)} cases within the ${BUDGET_MS} ms budget (${done})`);
  t.ok(verdicts['mutated config: loaded'] ?? 0, 'some mutations still load (the corpus is valid)');
});
