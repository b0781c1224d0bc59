import { Command } from 'commander';
import { editorSchemaText } from '../config/editor-schema.js';
import { ConfigSchema } from '../config/schema-data.js';
import type { CliContext } from './context.js';

/** `faithd6 schema`: the config file's JSON Schema, for editors (etc/faithd6.schema.json is its output). */
export function schemaCommand(ctx: CliContext): Command {
  return new Command('schema').description('print the JSON Schema of the config file, for editors (etc/faithd6.schema.json)').action(() => {
    ctx.stdout.write(editorSchemaText(ConfigSchema));
  });
}
