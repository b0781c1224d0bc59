import { execFile } from 'node:child_process';
import { FaithdError } from '../errors.js';

/** Runs `ip` with arguments; resolves with stdout, rejects with its stderr as the message. */
function ip(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ip', args, { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) {
        const detail = stderr.trim() || err.message;
        reject(Object.assign(new Error(`ip ${args.join(' ')}: ${detail}`), { stderr: detail, cause: err }));
      } else {
        resolve(stdout);
      }
    });
  });
}

function routeError(prefix: string, verb: string, err: Error & { stderr?: string }): FaithdError {
  const detail = err.stderr ?? err.message;
  if (/not permitted|permission denied/i.test(detail)) {
    const hint = /permission denied/i.test(detail) ? ' (is IPv6 disabled on this host?)' : ' (needs root or CAP_NET_ADMIN)';
    return new FaithdError('NO_PERMISSION', `cannot ${verb} the local route for ${prefix}: ${detail}${hint}`, { cause: err });
  }
  if ((err.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    return new FaithdError('ROUTE', `cannot ${verb} the local route for ${prefix}: the ip command (iproute2) is not installed`, { cause: err });
  }
  return new FaithdError('ROUTE', `cannot ${verb} the local route for ${prefix}: ${detail}`, { cause: err });
}

/** Whether `local PREFIX dev lo` is in the local table. */
export async function hasLocalRoute(prefix: string): Promise<boolean> {
  try {
    const out = await ip(['-6', 'route', 'show', 'table', 'local', 'exact', prefix]);
    return /^local\s/m.test(out);
  } catch (err) {
    throw routeError(prefix, 'look up', err as Error);
  }
}

/**
 * Makes every address of each prefix local (`ip -6 route add local PREFIX dev lo`), so that a
 * listener on [::]:port accepts connections to all of them. Returns the prefixes it added;
 * a route that was already there is left as it is and not returned, so it is never removed.
 */
export async function addLocalRoutes(prefixes: readonly string[]): Promise<string[]> {
  const added: string[] = [];
  try {
    for (const prefix of prefixes) {
      if (await hasLocalRoute(prefix)) continue;
      try {
        await ip(['-6', 'route', 'add', 'local', prefix, 'dev', 'lo']);
      } catch (err) {
        throw routeError(prefix, 'add', err as Error);
      }
      added.push(prefix);
    }
  } catch (err) {
    await removeLocalRoutes(added).catch(() => {});
    throw err;
  }
  return added;
}

/** Removes the local routes for these prefixes; a route that is already gone is no error. */
export async function removeLocalRoutes(prefixes: readonly string[]): Promise<void> {
  for (const prefix of prefixes) {
    if (!(await hasLocalRoute(prefix))) continue;
    try {
      await ip(['-6', 'route', 'del', 'local', prefix, 'dev', 'lo', 'table', 'local']);
    } catch (err) {
      throw routeError(prefix, 'remove', err as Error);
    }
  }
}
