/**
 * `faithd6 doctor`: runs the checks of this host, one file each in this folder, in the order an
 * operator fixes things: the config, IPv6, the local routes, the ports, the data plane and the
 * listen backlog, forwarding, DNS names.
 */
import { loadConfig } from '../config/load.js';
import type { LoadedConfig } from '../config/types.js';
import type { Check } from './check.js';
import { birdChecks } from './bird.js';
import { configCheck } from './config.js';
import { forwardingChecks } from './forwarding.js';
import { ftpChecks } from './ftp.js';
import { ipv6Check } from './ipv6.js';
import { nameChecks } from './names.js';
import { backlogCheck, planeCheck } from './plane.js';
import { portChecks } from './ports.js';
import { Reachability } from './reachability.js';
import { routeCheck } from './route.js';

export type { Check } from './check.js';

export interface DoctorOptions {
  readonly configFile: string;
  /** DNS names whose AAAA records should be translated addresses of permitted servers. */
  readonly names?: readonly string[];
}

export interface DoctorReport {
  /** False when the config file could not be loaded (the CLI exits 78 then). */
  readonly configValid: boolean;
  readonly checks: readonly Check[];
}

/**
 * Checks this host (this network namespace) for what faithd6 needs: a valid config, IPv6,
 * the local routes, the service ports, the forwarding/accept_ra trap, and optionally that DNS
 * names lead to permitted translations. Checks that need the config are skipped when it is
 * invalid; the others still run.
 */
export async function runDoctor(options: DoctorOptions): Promise<DoctorReport> {
  const checks: Check[] = [];
  let loaded: LoadedConfig | undefined;
  try {
    loaded = await loadConfig(options.configFile);
    checks.push(configCheck(loaded));
  } catch (err) {
    checks.push({
      ok: false,
      title: `config ${options.configFile}`,
      detail: `invalid:\n${(err as Error).message}`,
      fix: 'correct the file (each problem names file:line:col and the key), or point -c at the right one',
    });
  }
  checks.push(await ipv6Check());
  if (loaded !== undefined) {
    const { config } = loaded;
    for (const prefix of config.prefixes) checks.push(await routeCheck(config, prefix));
    checks.push(...(await portChecks(config)));
    checks.push(planeCheck(config), backlogCheck(config));
    checks.push(...ftpChecks(config));
    checks.push(...(await birdChecks(config)));
  }
  checks.push(...(await forwardingChecks()));
  if (loaded !== undefined && options.names !== undefined && options.names.length > 0) {
    const reach = new Reachability(loaded.config);
    for (const name of options.names) checks.push(...(await nameChecks(loaded.config, reach, name)));
  }
  return { configValid: loaded !== undefined, checks };
}
