import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package's top directory: the nearest one above this file with a package.json (src/ or dist/src/). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    /* c8 ignore next -- only when faithd6 is installed without its package.json */
    if (parent === dir) throw new Error('faithd6 is installed without its package.json');
    dir = parent;
  }
  return dir;
}

/** faithd6's version, from its package.json. */
export function version(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}
