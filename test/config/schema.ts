// The JSON Schema editors get (etc/faithd6.schema.json) against what `check` does: it is the
// current output of `faithd6 schema`, it validates the shipped example, it refuses what check
// refuses for the schema's own reasons, and editing the schema changes what check accepts.
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Ajv2020 } from 'ajv/dist/2020.js';
import t from 'tap';
import { parse } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { editorSchema } from '../../src/config/editor-schema.js';
import { editorSchemaFile, schemaModule } from '../../src/config/generate-schema.js';
import { ConfigSchema as Definition } from '../../src/config/schema.js';
import { ConfigSchema } from '../../src/config/schema-data.js';
import { schemaOf, type SchemaNode } from '../../src/config/walk.js';

const run = promisify(execFile);
const ROOT = new URL('../..', import.meta.url).pathname;
const SHIPPED = join(ROOT, 'etc/faithd6.schema.json');
const EXAMPLE = join(ROOT, 'etc/faithd6.yaml');

const shipped = JSON.parse(readFileSync(SHIPPED, 'utf8')) as Record<string, unknown>;
// strict: unknown keywords, and keywords misplaced for a type, are errors in the schema itself.
const validate = new Ajv2020({ strict: true, allErrors: true }).compile(shipped);

t.test('schema-data.ts is what the definition builds now, and what the program reads', async (t) => {
  const written = readFileSync(join(ROOT, 'src/config/schema-data.ts'), 'utf8');
  t.equal(written, schemaModule(), 'regenerate it with: npm run schema');
  t.same(ConfigSchema, Definition, 'the object the program reads is the one TypeBox builds');
  // NODE_DEBUG=esm names every module node loads (on stderr); the same check of schema.js, which does load it, shows the check can fail.
  const loaded = async (module: string) =>
    (
      await run(process.execPath, ['-e', `import("./dist/src/${module}")`], {
        cwd: ROOT,
        env: { ...process.env, NODE_OPTIONS: '', NODE_DEBUG: 'esm' },
        maxBuffer: 256 << 20,
      })
    ).stderr;
  t.notMatch(await loaded('cli/main.js'), 'node_modules/typebox/', 'the CLI does not load TypeBox');
  t.match(await loaded('config/schema.js'), 'node_modules/typebox/', 'the definition does');
});

t.test('etc/faithd6.schema.json is what `faithd6 schema` prints now', async (t) => {
  t.same(shipped, editorSchema(ConfigSchema), 'regenerate it with: npm run schema');
  t.equal(readFileSync(SHIPPED, 'utf8'), editorSchemaFile(), 'regenerate it with: npm run schema');
  t.notMatch(readFileSync(SHIPPED, 'utf8'), '"x-', 'faithd6-only annotations are left out');
});

t.test('the shipped example names the schema and is valid by it', async (t) => {
  const text = readFileSync(EXAMPLE, 'utf8');
  t.equal(text.split('\n')[0], '# yaml-language-server: $schema=faithd6.schema.json', 'the first line tells editors where the schema is');
  t.equal(validate(parse(text)), true, JSON.stringify(validate.errors));
});

t.test('every key of the schema is documented in the shipped example', async (t) => {
  const text = readFileSync(EXAMPLE, 'utf8');
  const walk = (node: SchemaNode, path: string): void => {
    if (schemaOf.isList(node)) return walk(schemaOf.item(node), path);
    for (const [name, child] of Object.entries(schemaOf.properties(node))) {
      t.match(text, new RegExp(`\\b${name}\\b`), `${path}${name}`);
      walk(child, `${path}${name}.`);
    }
  };
  walk(ConfigSchema, '');
});

const BASE = `prefixes: [2001:db8:5999::/96]
services: [{port: 5999}]
rules: [{action: permit, to: 192.0.2.10}]
`;

/** Mistakes of shape, type and range: the editor's schema and check both refuse each. */
const REFUSED_BY_BOTH: Record<string, string> = {
  'a missing required key': 'prefixes: [2001:db8:5999::/96]\nservices: [{port: 5999}]\n',
  'an unknown top-level key': `${BASE}colour: blue\n`,
  'an unknown key in a service': BASE.replace('{port: 5999}', '{port: 5999, prot: 1}'),
  'a port out of range': BASE.replace('5999}', '65536}'),
  'a port as a string': BASE.replace('5999}', '"5999"}'),
  'workers: 0': BASE.replace('5999}', '5999, workers: 0}'),
  'no services': BASE.replace('[{port: 5999}]', '[]'),
  'an empty list of prefixes': BASE.replace('[2001:db8:5999::/96]', '[]'),
  'a rule without an action': BASE.replace('action: permit, ', ''),
  'an action that is neither': BASE.replace('permit', 'allow'),
  'a list of lists as to': BASE.replace('to: 192.0.2.10', 'to: [[192.0.2.10]]'),
  'an empty list of ports': BASE.replace('to: 192.0.2.10', 'to: 192.0.2.10, ports: []'),
  'a timeout without a unit': `${BASE}timeouts: {connect: 10}\n`,
  'a timeout that is not a duration': `${BASE}timeouts: {idle: soon}\n`,
  'a limit below its minimum': `${BASE}limits: {sourcePrefixLength: 8}\n`,
  'a limit that is not an integer': `${BASE}limits: {connectionsPerWorker: 1.5}\n`,
  'an unknown limit': `${BASE}limits: {connectionsPerPort: 1}\n`,
  'an unknown log level': `${BASE}log: {level: verbose}\n`,
  'a user name with a space': `${BASE}user: "no body"\n`,
  'a relative runtime directory': `${BASE}runtimeDirectory: run/faithd6\n`,
  'a mapping where a list belongs': BASE.replace('[2001:db8:5999::/96]', '{a: 1}'),
};

/** What only check can know: these pass the editor's schema and check refuses them. */
const REFUSED_BY_CHECK_ONLY: Record<string, string> = {
  'overlapping prefixes': BASE.replace('[2001:db8:5999::/96]', '[2001:db8:5999::/96, 2001:db8::/32]'),
  'a prefix of a length RFC 6052 does not allow': BASE.replace('/96]', '/95]'),
  'a port given to two services': BASE.replace('[{port: 5999}]', '[{port: 5999}, {port: 5999}]'),
  'a rule naming a port that is no service': BASE.replace('to: 192.0.2.10', 'to: 192.0.2.10, ports: 80'),
  'an IPv4 network that is not one': BASE.replace('192.0.2.10', '192.0.2.300'),
  'a connect timeout over 10m': `${BASE}timeouts: {connect: 11m}\n`,
};

function checkAccepts(text: string): boolean {
  try {
    parseConfig(text, '/etc/faithd6.yaml');
    return true;
  } catch {
    return false;
  }
}

t.test('the editor and check agree on mistakes of shape, type and range', async (t) => {
  t.equal(validate(parse(BASE)), true, 'the base is valid for the editor');
  t.equal(checkAccepts(BASE), true, 'and for check');
  for (const [name, text] of Object.entries(REFUSED_BY_BOTH)) {
    t.equal(validate(parse(text)), false, `${name}: the editor refuses it`);
    t.equal(checkAccepts(text), false, `${name}: check refuses it`);
  }
  for (const [name, text] of Object.entries(REFUSED_BY_CHECK_ONLY)) {
    t.equal(validate(parse(text)), true, `${name}: the editor lets it pass`);
    t.equal(checkAccepts(text), false, `${name}: check refuses it`);
  }
});

t.test('editing the schema changes what check accepts, once generated, with no other edit', async (t) => {
  // A copy of the built program whose schema alone is edited (and generated): workers at most 8, and a new limit.
  const copy = t.testdir();
  cpSync(join(ROOT, 'dist'), join(copy, 'dist'), { recursive: true });
  cpSync(join(ROOT, 'bin'), join(copy, 'bin'), { recursive: true });
  cpSync(join(ROOT, 'package.json'), join(copy, 'package.json'));
  symlinkSync(join(ROOT, 'node_modules'), join(copy, 'node_modules'));
  const schemaJs = join(copy, 'dist/src/config/schema.js');
  const original = readFileSync(schemaJs, 'utf8');
  const edited = original
    .replace('Int(1, 64, ', 'Int(1, 8, ')
    .replace(
      'connectionsPerWorker: Type.Optional(',
      "examplePerSecond: Type.Optional(Int(1, 10, 'an example limit', { default: 3 })),\n        connectionsPerWorker: Type.Optional(",
    );
  t.not(edited, original, 'the edit applies');
  t.equal(edited.split('examplePerSecond').length, 2, 'the new key is added once');
  writeFileSync(schemaJs, edited);
  // What `npm run schema` does in a source tree: the object the program reads, written anew.
  await run(process.execPath, [join(copy, 'dist/src/config/generate-schema.js'), '--js', join(copy, 'dist/src/config/schema-data.js')]);

  const dir = join(copy, 'configs');
  mkdirSync(dir);
  const check = async (program: string, name: string, text: string) => {
    const file = join(dir, name);
    writeFileSync(file, text, { mode: 0o644 });
    try {
      const { stdout } = await run(process.execPath, [join(program, 'bin/faithd6'), 'check', '-c', file]);
      return { code: 0, out: stdout };
    } catch (err) {
      const e = err as { code: number; stderr: string };
      return { code: e.code, out: e.stderr };
    }
  };
  const workers = BASE.replace('{port: 5999}', '{port: 5999, workers: 12}');
  t.equal((await check(ROOT, 'workers.yaml', workers)).code, 0, 'the shipped schema allows 12 workers');
  const refused = await check(copy, 'workers.yaml', workers);
  t.equal(refused.code, 78, 'the edited one refuses them');
  t.match(refused.out, 'services[0].workers: 12 is out of range (expected an integer from 1 to 8)');

  const limit = `${BASE}limits: {examplePerSecond: 7}\n`;
  const unknown = await check(ROOT, 'limit.yaml', limit);
  t.equal(unknown.code, 78, 'the shipped schema has no such limit');
  t.match(unknown.out, 'limits.examplePerSecond: unknown key "examplePerSecond"');
  const known = await check(copy, 'limit.yaml', limit);
  t.equal(known.code, 0, known.out);
  t.match(known.out, /^limits: examplePerSecond 7, connectionsPerWorker 4096, /m, 'check prints the new key');
  const defaulted = await check(copy, 'base.yaml', BASE);
  t.match(defaulted.out, /^limits: examplePerSecond 3, /m, 'with its default when the file has none');
  const tooBig = await check(copy, 'big.yaml', `${BASE}limits: {examplePerSecond: 11}\n`);
  t.match(tooBig.out, 'limits.examplePerSecond: 11 is out of range (expected an integer from 1 to 10)');
  const { stdout: json } = await run(process.execPath, [join(copy, 'bin/faithd6'), 'schema']);
  t.match(JSON.parse(json), { properties: { limits: { properties: { examplePerSecond: { maximum: 10, default: 3 } } } } }, 'and so does the editor schema');
});
