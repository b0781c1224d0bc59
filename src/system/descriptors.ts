import { readdirSync, readFileSync } from 'node:fs';

/** This process's soft limit on open files (RLIMIT_NOFILE), or undefined where /proc says nothing. */
export function openFileLimit(limits = '/proc/self/limits'): number | undefined {
  try {
    const line = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync(limits, 'utf8'));
    if (line === null) return undefined;
    return line[1] === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(line[1]);
  } catch {
    return undefined;
  }
}

/** How many descriptors this process has open now. */
export function openDescriptors(fds = '/proc/self/fd'): number {
  try {
    return readdirSync(fds).length;
  } catch {
    return 0;
  }
}
