/**
 * Compares two OpenAPI documents by path, method, status and schema, after resolving `$ref`s and dropping what
 * is representation only (key and `required` order, `type` beside `enum`/`const`, `additionalProperties: true`,
 * `oneOf` vs `anyOf` of branches of distinct types, `allOf: [X, {required}]` vs X with those required). Prints each
 * remaining difference as a JSON pointer with both values; exits 1 when there is one.
 *   node dist/tools/openapi-diff.js before.json after.json   (or: --current after.json to dump the generated one)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { isDeepStrictEqual } from 'node:util';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };
const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Resolves every local `$ref` (the documents have no cycles) and normalizes each schema. */
function normalize(value: Json, root: JsonObject): Json {
  if (Array.isArray(value)) return value.map((v) => normalize(v, root));
  if (!isObject(value)) return value;
  if (typeof value.$ref === 'string') {
    const target = value.$ref
      .slice(2)
      .split('/')
      .reduce<Json>((node, key) => (isObject(node) ? (node[key] ?? null) : null), root);
    const { $ref: _ref, ...siblings } = value;
    return normalize({ ...(isObject(target) ? target : {}), ...siblings }, root);
  }
  const out: JsonObject = {};
  for (const key of Object.keys(value).sort()) out[key] = normalize(value[key] ?? null, root);
  if (out.oneOf === undefined && disjointTypes(out.anyOf)) {
    out.oneOf = out.anyOf;
    delete out.anyOf;
  }
  if ((out.enum !== undefined || out.const !== undefined) && typeof out.type === 'string') delete out.type;
  if (out.additionalProperties === true) delete out.additionalProperties;
  const allOf = out.allOf;
  if (Array.isArray(allOf) && allOf.length === 2 && isObject(allOf[0]) && isObject(allOf[1])) {
    const [base, extra] = allOf;
    if (Object.keys(extra).join() === 'required' && Array.isArray(extra.required)) {
      delete out.allOf;
      const required = [
        ...new Set([...(Array.isArray(base.required) ? base.required : []), ...extra.required]),
      ];
      Object.assign(out, { ...base, required }, out);
      out.required = required;
    }
  }
  mergeTypeBranches(out);
  if (Array.isArray(out.required)) out.required = [...out.required].sort();
  if (Array.isArray(out.parameters))
    out.parameters = [...out.parameters].sort((a, b) =>
      JSON.stringify([isObject(a) ? a.in : '', isObject(a) ? a.name : '']).localeCompare(
        JSON.stringify([isObject(b) ? b.in : '', isObject(b) ? b.name : '']),
      ),
    );
  return out;
}

/**
 * `oneOf` of branches that each assert one `type` (plus keywords that apply to that type only, such as
 * `maxLength` to strings) equals one schema with the types as a list and the keywords side by side.
 */
function mergeTypeBranches(schema: JsonObject): void {
  const branches = schema.oneOf;
  if (!Array.isArray(branches) || !disjointTypes(branches)) return;
  const merged: JsonObject = { type: branches.map((b) => b.type ?? null) };
  for (const branch of branches) {
    for (const [key, value] of Object.entries(branch)) {
      if (key === 'type') continue;
      if (key in merged) return; // a keyword two branches state: not a plain merge
      merged[key] = value;
    }
  }
  delete schema.oneOf;
  Object.assign(schema, merged);
}

/**
 * Branches that each assert one `type`, no two the same: at most one can match a value, so `anyOf` and `oneOf` of
 * them mean the same, and they can be written as one schema. Branches of one type overlap and are kept as they are.
 */
function disjointTypes(branches: Json | undefined): branches is JsonObject[] {
  if (!Array.isArray(branches) || !branches.every((b) => isObject(b) && typeof b.type === 'string'))
    return false;
  return new Set(branches.map((b) => (b as JsonObject).type)).size === branches.length;
}

/** Every leaf difference between `a` and `b`, as pointer: before → after. */
function differences(a: Json | undefined, b: Json | undefined, pointer: string, out: string[]): void {
  if (isDeepStrictEqual(a, b)) return;
  if (Array.isArray(a) && Array.isArray(b) && a.length === b.length) {
    a.forEach((item, i) => {
      differences(item, b[i], `${pointer}/${i}`, out);
    });
    return;
  }
  if (isObject(a) && isObject(b)) {
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)]))
      differences(a[key], b[key], `${pointer}/${key.replaceAll('~', '~0').replaceAll('/', '~1')}`, out);
    return;
  }
  const show = (value: Json | undefined) => (value === undefined ? '(absent)' : JSON.stringify(value));
  out.push(`${pointer}: ${show(a)} → ${show(b)}`);
}

/** The differences between two documents' paths (components are compared where they are used). */
export function openApiDifferences(before: JsonObject, after: JsonObject): string[] {
  const out: string[] = [];
  differences(normalize(before.paths ?? {}, before), normalize(after.paths ?? {}, after), '#/paths', out);
  const { paths: _a, components: _c, ...headBefore } = before;
  const { paths: _b, components: _d, ...headAfter } = after;
  differences(headBefore, headAfter, '#', out);
  return out;
}

const [, script, first, second] = process.argv;
const isMain = script !== undefined && import.meta.url === pathToFileURL(script).href;
if (isMain && first === '--current' && second !== undefined) {
  const { openApiDocument } = await import('../src/http/openapi.js');
  writeFileSync(second, `${JSON.stringify(openApiDocument, null, 2)}\n`);
} else if (isMain && first !== undefined && second !== undefined) {
  const read = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as JsonObject;
  const found = openApiDifferences(read(first), read(second));
  for (const line of found) console.log(line);
  console.log(`${found.length} difference(s)`);
  process.exitCode = found.length > 0 ? 1 : 0;
}
