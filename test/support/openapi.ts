import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { openApiDocument } from '../../src/http/openapi.js';

const DOC_ID = 'https://iot-functions-backend.local/openapi.json';
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats.default(ajv);
ajv.addSchema({ ...openApiDocument, $id: DOC_ID });

const pointer = (...parts: string[]) =>
  parts.map((p) => p.replaceAll('~', '~0').replaceAll('/', '~1')).join('/');

/** Validates the document itself against the OpenAPI 3.1 schema. */
export async function validateDocument(): Promise<{ valid: boolean; errors: unknown }> {
  const spec = JSON.parse(JSON.stringify(openApiDocument)) as Parameters<Validator['validate']>[0];
  const result = await new Validator().validate(spec);
  return { valid: result.valid, errors: result.errors };
}

/** Every (method, path) the document describes, keyed by operationId. */
export function operations(): Map<
  string,
  { method: string; path: string; statuses: string[]; anonymous: boolean }
> {
  const out = new Map<string, { method: string; path: string; statuses: string[]; anonymous: boolean }>();
  for (const [path, item] of Object.entries(openApiDocument.paths)) {
    for (const [method, value] of Object.entries(item)) {
      const op = value as { operationId?: string; responses?: Record<string, unknown>; security?: unknown[] };
      if (typeof op.operationId !== 'string') continue;
      const anonymous = Array.isArray(op.security) && op.security.length === 0;
      out.set(op.operationId, { method, path, statuses: Object.keys(op.responses ?? {}), anonymous });
    }
  }
  return out;
}

/** Checks a response against what the document declares for that operation and status; returns the problems. */
export function responseProblems(
  operationId: string,
  status: number,
  body: unknown,
  contentType?: string,
): string[] {
  const op = operations().get(operationId);
  if (!op) return [`no operation ${operationId}`];
  if (!op.statuses.includes(String(status))) return [`${operationId} does not declare status ${status}`];
  if (status === 204) return [];
  const type = status >= 400 ? 'application/problem+json' : 'application/json';
  if (contentType !== undefined && status >= 400 && contentType !== type)
    return [`content-type ${contentType}`];
  const ref = `${DOC_ID}#/${pointer('paths', op.path, op.method, 'responses', String(status), 'content', type, 'schema')}`;
  const validate = ajv.getSchema(ref) ?? ajv.compile({ $ref: ref });
  return validate(body) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message ?? ''}`);
}

/** Checks a request body against what the document declares for that operation; returns the problems. */
export function requestProblems(
  operationId: string,
  body: unknown,
  mediaType = 'application/json',
): string[] {
  const op = operations().get(operationId);
  if (!op) return [`no operation ${operationId}`];
  const ref = `${DOC_ID}#/${pointer('paths', op.path, op.method, 'requestBody', 'content', mediaType, 'schema')}`;
  const validate = ajv.getSchema(ref) ?? ajv.compile({ $ref: ref });
  return validate(body) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message ?? ''}`);
}
