import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { backlogCheck, planeCheck } from '../../src/doctor/plane.js';

const BASE = 'prefixes: 2001:db8:5999::/96\nservices: [{ port: 5999 }]\nrules: []\n';
const config = (extra = '') => parseConfig(BASE + extra, 'test.yaml').config;

t.test('the data plane: native where the addon loads, js when chosen', async (t) => {
  const native = planeCheck(config());
  t.equal(native.ok, true, 'the addon built by npm install loads');
  t.match(native.detail, /^native, from \/.*faithd6\.node$/, 'and the check says which file');
  t.same(planeCheck(config('dataPlane: js\n')), { ok: true, title: 'data plane', detail: 'the JavaScript data plane (dataPlane: js)' });
});

t.test('the listen backlog: somaxconn by default, a larger one is capped by the kernel', async (t) => {
  t.same(backlogCheck(config(), 4096), { ok: true, title: 'listen backlog', detail: '4096 (net.core.somaxconn)' });
  t.same(backlogCheck(config('listenBacklog: 1000\n'), 4096), {
    ok: true,
    title: 'listen backlog',
    detail: '1000 (listenBacklog; net.core.somaxconn is 4096)',
  });
  const over = backlogCheck(config('listenBacklog: 65535\n'), 4096);
  t.equal(over.ok, false);
  t.equal(over.detail, 'listenBacklog is 65535, but the kernel caps every backlog at net.core.somaxconn, 4096');
  t.match(over.fix, 'sysctl -w net.core.somaxconn=65535');
});
