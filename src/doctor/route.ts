/** Check: the local route of each prefix is there (`local PREFIX dev lo`). */
import type { Config } from '../config/types.js';
import { localRouteState, ROUTE_PROTOCOL } from '../system/route.js';
import type { Check } from './check.js';

export async function routeCheck(config: Config, prefix: string): Promise<Check> {
  const title = `local route ${prefix}`;
  let state;
  try {
    state = await localRouteState(prefix);
  } catch (err) {
    return { ok: false, title, detail: `cannot check: ${(err as Error).message}`, fix: 'see the message; ip (iproute2) must work' };
  }
  switch (state) {
    case 'ours':
      return { ok: true, title, detail: `present (added by faithd6, proto ${ROUTE_PROTOCOL})` };
    case 'foreign':
      return { ok: true, title, detail: 'present (not added by faithd6: faithd6 leaves it alone)' };
    case 'absent':
      return {
        ok: false,
        title,
        detail: 'missing: connections to the translated addresses do not reach faithd6',
        fix:
          config.route === 'manage'
            ? `faithd6 route up -c ${config.file} (faithd6 start and run add it too when they run as root)`
            : `ip -6 route add local ${prefix} dev lo (route: external: faithd6 leaves it to you)`,
      };
  }
}
