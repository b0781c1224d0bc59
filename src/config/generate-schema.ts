/**
 * Writes what the config schema's definition (schema.ts) builds, so that the program need not
 * load TypeBox to build it at every start: schema-data.ts, the object itself, which the rest of
 * the program imports, and etc/faithd6.schema.json, the JSON Schema editors get.
 *
 *   npm run schema      after editing schema.ts (the build, this, the build again)
 *   node dist/src/config/generate-schema.js [--js FILE]
 *
 * With --js, it writes only the compiled form of schema-data.ts to FILE (a built copy whose
 * schema.js was edited; test/config/schema.ts does that).
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { editorSchemaText } from './editor-schema.js';
import { ConfigSchema } from './schema.js';

const HEADER = `// Generated from schema.ts by \`npm run schema\` (generate-schema.ts): edit that, not this.
// The object TypeBox builds there, written out so that starting the program does not load TypeBox.`;

/** The text of schema-data.ts, or with `js` of its compiled form. */
export function schemaModule(js = false): string {
  const literal = JSON.stringify(JSON.stringify(ConfigSchema));
  if (js) return `${HEADER}\nexport const ConfigSchema = JSON.parse(${literal});\n`;
  return `${HEADER}
import type { ConfigSchema as Definition } from './schema.js';

export const ConfigSchema = JSON.parse(${literal}) as typeof Definition;
`;
}

/** The text of etc/faithd6.schema.json, from the definition (schema-data.ts may be the one being replaced). */
export function editorSchemaFile(): string {
  return editorSchemaText(ConfigSchema);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const js = process.argv.indexOf('--js');
  if (js >= 0) {
    writeFileSync(process.argv[js + 1] ?? '', schemaModule(true));
  } else {
    const root = new URL('../../../', import.meta.url);
    writeFileSync(new URL('src/config/schema-data.ts', root), schemaModule());
    writeFileSync(new URL('etc/faithd6.schema.json', root), editorSchemaFile());
  }
}
