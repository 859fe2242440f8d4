/**
 * Builds the OpenAPI 3.1 document from the route table (src/http/openapi.ts) and the zod schemas the handlers
 * validate with, through zod's own JSON Schema output (`z.toJSONSchema`, draft 2020-12: OpenAPI 3.1's dialect).
 * A schema carrying `.meta({ id })` becomes `#/components/schemas/<id>`; every other schema is written inline.
 * See docs/adr/0009-openapi-from-zod.md.
 */
import { z } from 'zod';

export type HttpMethod = 'get' | 'post' | 'patch' | 'delete';
export type JsonObject = Record<string, unknown>;

/** A response header: what it says and its schema. */
export interface HeaderSpec {
  description?: string;
  schema: z.ZodType;
}

/** A non-problem answer of an operation. */
export interface ResponseSpec {
  description: string;
  /** The JSON body; none for 204. */
  schema?: z.ZodType;
  headers?: Readonly<Record<string, HeaderSpec>>;
}

export interface ParameterSpec {
  name: string;
  in: 'path' | 'query' | 'header';
  required?: boolean;
  description?: string;
  style?: 'deepObject';
  schema: z.ZodType;
}

/** One HTTP function: what src/index.ts registers and what the document says about it. */
export interface ApiRoute {
  /** The function's name and the operation's id. */
  operationId: string;
  method: HttpMethod;
  /** The document's path ('/devices/{id}'); the Functions route is the same without the leading '/'. */
  path: string;
  tags: readonly [string];
  summary?: string;
  description?: string;
  /** Served without a function key (authLevel anonymous, `security: []`). */
  anonymous?: boolean;
  /** The path's parameters, the same for every operation on the path. */
  pathParameters?: readonly ParameterSpec[];
  /** The handler's query schema: one query parameter per property (its description lifted to the parameter). */
  query?: z.ZodObject;
  /** Parameters that no query schema states (headers, deepObject filters). */
  parameters?: readonly ParameterSpec[];
  /** The request body by media type. */
  body?: { required?: boolean; content: Readonly<Record<string, z.ZodType>> };
  responses: Readonly<Record<number, ResponseSpec>>;
  /** Statuses answered with RFC 9457 problem details, described by PROBLEM_DESCRIPTIONS. */
  problems: readonly number[];
  /** Problem statuses this route describes in its own words (added to `problems`). */
  problemNotes?: Readonly<Record<number, string>>;
}

/**
 * The common part of the operations on one resource: `under('/jobs/{id}', 'Jobs', jobId)('getJob', 'get')` is
 * GET /jobs/{id}, tagged Jobs, with the path parameter; a third argument appends to the path.
 */
export const under =
  (base: string, tag: string, pathParameter: ParameterSpec) =>
  (operationId: string, method: HttpMethod, path = '') => ({
    operationId,
    method,
    path: `${base}${path}`,
    tags: [tag] as const,
    pathParameters: [pathParameter],
  });

/** What a problem status means, unless the route says otherwise. */
const PROBLEM_DESCRIPTIONS: Readonly<Record<number, string>> = {
  400: 'Malformed JSON, JSON nested deeper than 32 levels, an invalid id or continuation token; where If-Match is read, an empty or malformed one',
  404: 'Unknown device',
  409: 'Duplicate device id, or a state change the resource does not allow',
  412: 'None of the If-Match entity tags the client sent is current (never for a race the service lost: that is retried)',
  413: 'The body is larger than the route accepts (Http__MaxBodyBytes; bulk: Http__MaxBulkBodyBytes)',
  415: 'A body whose Content-Type is not JSON (send application/json; absent, text/plain and x-www-form-urlencoded are refused)',
  422: 'The body or query breaks the schema',
  429: 'Too many active jobs on IoT Hub',
  503: 'A backing service is throttled or unavailable, or an update kept losing concurrent races; retry after Retry-After seconds',
  500: 'Internal error (no internals disclosed)',
};

const COMPONENTS = '#/components/schemas/';
const SCHEMA_MAPS = new Set(['properties', 'patternProperties', '$defs']);
const SCHEMA_LISTS = new Set(['anyOf', 'oneOf', 'allOf', 'prefixItems']);
const SCHEMAS = new Set(['items', 'additionalProperties', 'propertyNames', 'not', 'if', 'then', 'else']);

const isObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Drops what zod writes beyond the contract: the regex it checks date-times with (`format: date-time` is the
 * contract), integer bounds that only restate JavaScript's safe range, `type: string` in `propertyNames` (every
 * JSON name is a string) and `additionalProperties: {}` (allows what absence allows); points `$defs` references
 * at the document's components.
 */
function tidy(schema: JsonObject): JsonObject {
  if (schema.format === 'date-time') delete schema.pattern;
  if (schema.minimum === Number.MIN_SAFE_INTEGER) delete schema.minimum;
  if (schema.maximum === Number.MAX_SAFE_INTEGER) delete schema.maximum;
  const names = schema.propertyNames;
  if (isObject(names) && names.type === 'string') {
    delete names.type;
    if (Object.keys(names).length === 0) delete schema.propertyNames;
  }
  if (isObject(schema.additionalProperties) && Object.keys(schema.additionalProperties).length === 0)
    delete schema.additionalProperties;
  if (typeof schema.$ref === 'string') schema.$ref = schema.$ref.replace(/^#\/\$defs\//, COMPONENTS);
  for (const [key, value] of Object.entries(schema)) {
    if (SCHEMA_MAPS.has(key) && isObject(value)) for (const child of Object.values(value)) tidyAny(child);
    else if (SCHEMA_LISTS.has(key) && Array.isArray(value)) for (const child of value) tidyAny(child);
    else if (SCHEMAS.has(key)) tidyAny(value);
  }
  return schema;
}
const tidyAny = (value: unknown) => {
  if (isObject(value)) tidy(value);
};

/** Converts zod schemas and collects the named ones (`.meta({ id })`) as components, one shape per name. */
export class SchemaConverter {
  readonly components = new Map<string, JsonObject>();

  /** The JSON Schema of `schema` as a request states it (defaults are defaults, not required fields). */
  convert(schema: z.ZodType): JsonObject {
    const json = z.toJSONSchema(schema, {
      target: 'draft-2020-12',
      io: 'input',
      unrepresentable: 'any',
    }) as JsonObject;
    const { $schema: _dialect, $defs, ...rest } = json;
    for (const [id, definition] of Object.entries(isObject($defs) ? $defs : {})) {
      this.add(id, tidy(definition as JsonObject));
    }
    return tidy(rest);
  }

  private add(id: string, definition: JsonObject): void {
    const known = this.components.get(id);
    if (known && JSON.stringify(known) !== JSON.stringify(definition))
      throw new Error(`Two different schemas are named ${id}.`);
    this.components.set(id, definition);
  }
}

const json = (schema: JsonObject) => ({ 'application/json': { schema } });

function parameter(spec: ParameterSpec, schemas: SchemaConverter): JsonObject {
  const { schema, ...rest } = spec;
  return { ...rest, schema: schemas.convert(schema) };
}

/** The query schema as parameters: each property one, its description on the parameter. */
function queryParameters(query: z.ZodObject, schemas: SchemaConverter): JsonObject[] {
  const object = schemas.convert(query);
  const required = new Set(Array.isArray(object.required) ? (object.required as string[]) : []);
  const properties = isObject(object.properties) ? object.properties : {};
  return Object.entries(properties).map(([name, value]) => {
    const { description, ...schema } = value as JsonObject;
    return {
      name,
      in: 'query',
      ...(required.has(name) ? { required: true } : {}),
      ...(typeof description === 'string' ? { description } : {}),
      schema,
    };
  });
}

function responses(route: ApiRoute, schemas: SchemaConverter, problem: JsonObject): JsonObject {
  const out: JsonObject = {};
  const notes = route.problemNotes ?? {};
  for (const status of [...route.problems, ...Object.keys(notes).map(Number)]) {
    const description = notes[status] ?? PROBLEM_DESCRIPTIONS[status] ?? 'Error';
    out[String(status)] = { description, content: { 'application/problem+json': { schema: problem } } };
  }
  for (const [status, spec] of Object.entries(route.responses)) {
    out[status] = {
      description: spec.description,
      ...(spec.headers
        ? {
            headers: Object.fromEntries(
              Object.entries(spec.headers).map(([name, header]) => [
                name,
                {
                  ...(header.description ? { description: header.description } : {}),
                  schema: schemas.convert(header.schema),
                },
              ]),
            ),
          }
        : {}),
      ...(spec.schema ? { content: json(schemas.convert(spec.schema)) } : {}),
    };
  }
  return out;
}

function operation(route: ApiRoute, schemas: SchemaConverter, problem: JsonObject): JsonObject {
  const parameters = [
    ...(route.query ? queryParameters(route.query, schemas) : []),
    ...(route.parameters ?? []).map((spec) => parameter(spec, schemas)),
  ];
  const body = route.body;
  return {
    operationId: route.operationId,
    tags: [...route.tags],
    ...(route.summary ? { summary: route.summary } : {}),
    ...(route.description ? { description: route.description } : {}),
    ...(route.anonymous ? { security: [] } : {}),
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(body
      ? {
          requestBody: {
            ...(body.required ? { required: true } : {}),
            content: Object.fromEntries(
              Object.entries(body.content).map(([type, schema]) => [
                type,
                { schema: schemas.convert(schema) },
              ]),
            ),
          },
        }
      : {}),
    responses: responses(route, schemas, problem),
  };
}

/** The document's fixed parts: everything but paths and component schemas. */
export interface DocumentHead {
  openapi: '3.1.0';
  info: { title: string; version: string; description: string };
  servers: { url: string }[];
  security: Record<string, string[]>[];
  tags: { name: string; description: string }[];
  securitySchemes: JsonObject;
}

export interface OpenApiDocument extends Omit<DocumentHead, 'securitySchemes'> {
  paths: Record<string, Record<string, unknown>>;
  components: { securitySchemes: JsonObject; schemas: Record<string, JsonObject> };
}

/**
 * The document of `routes`: one path item per path (its path parameters once, at the path level), one
 * operation per route, problem statuses answered with `problem` (the RFC 9457 schema, a named component).
 */
export function buildOpenApiDocument(
  head: DocumentHead,
  routes: readonly ApiRoute[],
  problem: z.ZodType,
): OpenApiDocument {
  const schemas = new SchemaConverter();
  const problemRef = schemas.convert(problem);
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const item = (paths[route.path] ??= {});
    const shared = (route.pathParameters ?? []).map((spec) =>
      parameter({ ...spec, in: 'path', required: true }, schemas),
    );
    if (shared.length > 0) {
      if (item.parameters !== undefined && JSON.stringify(item.parameters) !== JSON.stringify(shared))
        throw new Error(
          `${route.operationId}: the path parameters of ${route.path} differ between operations.`,
        );
      item.parameters = shared;
    }
    if (item[route.method] !== undefined)
      throw new Error(`${route.method} ${route.path} is in the table twice.`);
    item[route.method] = operation(route, schemas, problemRef);
  }
  const { securitySchemes, ...rest } = head;
  return { ...rest, paths, components: { securitySchemes, schemas: Object.fromEntries(schemas.components) } };
}
