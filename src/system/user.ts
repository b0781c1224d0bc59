import { execFileSync } from 'node:child_process';
import { FaithdError } from '../errors.js';

/** A user's numeric identity. */
export interface Identity {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

/** Looks a user up through NSS (`getent passwd`), so LDAP and the like work as well as /etc/passwd. */
export function lookupUser(name: string): Identity | undefined {
  let line: string;
  try {
    line = execFileSync('getent', ['passwd', name], { encoding: 'utf8', timeout: 5_000 });
  } catch {
    return undefined; // getent exits 2 for an unknown user
  }
  const fields = line.trim().split(':');
  const uid = Number(fields[2]);
  const gid = Number(fields[3]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) return undefined;
  return { name, uid, gid };
}

/**
 * The user workers run as, when faithd6 runs as root: the configured one (which must exist),
 * else `faithd6` if it exists, else `nobody`. Undefined when not root (nothing to drop).
 */
export function workerIdentity(configured: string | null, file: string): Identity | undefined {
  if (process.getuid?.() !== 0) return undefined;
  if (configured !== null) {
    const identity = lookupUser(configured);
    if (identity === undefined) throw new FaithdError('CONFIG', `${file}: user: "${configured}" does not exist on this host`);
    return identity;
  }
  const identity = lookupUser('faithd6') ?? lookupUser('nobody');
  if (identity === undefined) throw new FaithdError('CONFIG', `${file}: no user faithd6 or nobody on this host: set user:`);
  return identity;
}
