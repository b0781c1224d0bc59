/**
 * The JSON Schema editors get: the definition without faithd6's own annotations, with the
 * dialect and a title. Printed by `faithd6 schema`; etc/faithd6.schema.json is its output.
 */
export function editorSchema(schema: object): Record<string, unknown> {
  const strip = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(strip);
    if (typeof value !== 'object' || value === null) return value;
    return Object.fromEntries(
      Object.entries(value)
        .filter(([key]) => !key.startsWith('x-'))
        .map(([key, child]) => [key, strip(child)]),
    );
  };
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'faithd6 configuration (/etc/faithd6.yaml)',
    ...(strip(schema) as Record<string, unknown>),
  };
}

/** editorSchema() as `faithd6 schema` prints it and etc/faithd6.schema.json holds it. */
export function editorSchemaText(schema: object): string {
  return `${JSON.stringify(editorSchema(schema), null, 2)}\n`;
}
