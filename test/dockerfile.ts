// No Docker engine runs where the tests run, so this test does what the Dockerfile's run stage
// does, with its own commands read from the Dockerfile: install the production dependencies
// only, add the compiled code, and run faithd6. A runtime import of a dev dependency fails here.
import { execFileSync, execSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { packageRoot } from '../src/version.js';

const root = packageRoot();
const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
const runStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));

/** The RUN lines of a stage, continuation lines joined. */
function runCommands(stage: string): string[] {
  return stage
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .filter((line) => line.startsWith('RUN '))
    .map((line) => line.slice(4).trim());
}

t.test('the run stage installs production dependencies only, and faithd6 runs on them', async (t) => {
  const install = runCommands(runStage).find((c) => c.startsWith('npm ci'));
  t.ok(install?.includes('--omit=dev'), `the run stage's install omits dev dependencies: ${install}`);
  const dir = t.testdir();
  for (const file of ['package.json', 'package-lock.json']) cpSync(join(root, file), join(dir, file));
  // From the npm cache the suite's own install filled: CI reaches only the registries.
  execSync(`${install as string} --prefer-offline`, { cwd: dir, stdio: 'pipe', timeout: 180_000 });
  t.notOk(readdirSync(join(dir, 'node_modules')).includes('typescript'), 'no compiler in the image');
  t.notOk(readdirSync(join(dir, 'node_modules')).includes('tap'), 'no test runner in the image');
  mkdirSync(join(dir, 'etc'));
  cpSync(join(root, 'dist'), join(dir, 'dist'), { recursive: true });
  cpSync(join(root, 'bin'), join(dir, 'bin'), { recursive: true });
  // What the build stage built and the run stage copies (`npm run build:native` built it here).
  const addon = join('native', 'build', 'Release', 'faithd6.node');
  t.match(runStage, `COPY --from=build /src/${addon} ./${addon}`, 'the run stage takes the addon the build stage built');
  mkdirSync(join(dir, 'native', 'build', 'Release'), { recursive: true });
  cpSync(join(root, addon), join(dir, addon));
  cpSync(join(root, 'etc', 'faithd6.yaml'), join(dir, 'etc', 'faithd6.yaml'));
  const run = (...args: string[]): string =>
    execFileSync(process.execPath, [join(dir, 'bin', 'faithd6'), ...args], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  t.match(run('check', '-c', join(dir, 'etc', 'faithd6.yaml')), 'otherwise: deny');
  t.equal(run('translate', '--prefix', '2001:db8:5999::/96', '192.0.2.10'), '2001:db8:5999::c000:20a\n');
  // The daemon's own modules (supervisor, worker, relay, pino) load from the image's tree.
  t.equal(
    execFileSync(
      process.execPath,
      ['-e', "Promise.all(['daemon/supervisor','worker/worker','daemon/daemon'].map((m) => import(`./dist/src/${m}.js`))).then(() => console.log('loaded'))"],
      {
        cwd: dir,
        encoding: 'utf8',
        env: { ...process.env, NODE_OPTIONS: '' },
      },
    ),
    'loaded\n',
  );
  const loaded = execFileSync(
    process.execPath,
    ['-e', "import('./dist/src/relay/native.js').then(({ loadNative }) => console.log(loadNative().path ?? loadNative().reason))"],
    {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, NODE_OPTIONS: '' },
    },
  );
  t.equal(loaded, `${join(dir, addon)}\n`, 'the native data plane loads from the image tree');
});

t.test('the Dockerfile runs faithd6 as an unprivileged user, in the foreground', async (t) => {
  t.match(runStage, /\nUSER faithd6\n/);
  t.match(runStage, /ENTRYPOINT \["node", "\/opt\/faithd6\/bin\/faithd6"\]/);
  t.match(runStage, /CMD \["run", "-c", "\/etc\/faithd6.yaml"\]/);
  t.match(dockerfile, /FROM node:24-slim AS build/);
  t.match(runStage, /^\nFROM node:24-slim\n/, 'the run stage on the same maintained LTS line');
  t.ok(runCommands(dockerfile).includes('npm run build'), "the build stage compiles with the project's own build script");
  t.ok(
    runCommands(dockerfile).some((c) => c.startsWith('npm run build:native')),
    "the build stage builds the addon with the project's own script",
  );
});
