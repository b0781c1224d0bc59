/** Checks: which data plane will relay, and the listen backlog the kernel will grant. */
import type { Config } from '../config/types.js';
import { choosePlane, loadNative } from '../relay/native.js';
import { somaxconn } from '../system/somaxconn.js';
import type { Check } from './check.js';

/**
 * The data plane: with `dataPlane: native` (the default), whether the addon loads here; a
 * daemon without it still runs, on the JavaScript plane, and this says why.
 */
export function planeCheck(config: Config): Check {
  const title = 'data plane';
  if (config.dataPlane === 'js') return { ok: true, title, detail: 'the JavaScript data plane (dataPlane: js)' };
  const plane = choosePlane('native', 'tcp');
  const load = loadNative();
  if (plane.dataPlane === 'native' && load.addon !== undefined) return { ok: true, title, detail: `native, from ${load.path}` };
  return {
    ok: false,
    title,
    detail: `dataPlane is native, but ${plane.fallback ?? 'the addon is missing'}: faithd6 runs on the JavaScript data plane`,
    fix: 'reinstall faithd6 from its package (it ships the addon prebuilt for linux-x64), or build it with `npm run build:native` in its directory; dataPlane: js chooses the JavaScript plane on purpose',
  };
}

/** The listen backlog: the configured one, or net.core.somaxconn; the kernel silently caps a larger one. */
export function backlogCheck(config: Config, max = somaxconn()): Check {
  const title = 'listen backlog';
  if (config.listenBacklog === 0) return { ok: true, title, detail: `${max} (net.core.somaxconn)` };
  if (config.listenBacklog <= max) return { ok: true, title, detail: `${config.listenBacklog} (listenBacklog; net.core.somaxconn is ${max})` };
  return {
    ok: false,
    title,
    detail: `listenBacklog is ${config.listenBacklog}, but the kernel caps every backlog at net.core.somaxconn, ${max}`,
    fix: `sysctl -w net.core.somaxconn=${config.listenBacklog} (persisted in /etc/sysctl.d/), or a listenBacklog of at most ${max}`,
  };
}
