import { readFileSync } from 'node:fs';

/** What Linux has defaulted net.core.somaxconn to since 5.4, should /proc not say. */
const KERNEL_DEFAULT = 4096;

/** net.core.somaxconn of this process's network namespace: the longest listen backlog the kernel keeps. */
export function somaxconn(file = '/proc/sys/net/core/somaxconn'): number {
  try {
    const value = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(value) && value > 0 ? value : KERNEL_DEFAULT;
  } catch {
    return KERNEL_DEFAULT;
  }
}

/** The backlog to listen with: the configured one, or (0) net.core.somaxconn. */
export function listenBacklog(configured: number): number {
  return configured > 0 ? configured : somaxconn();
}
