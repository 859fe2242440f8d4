import type { z } from 'zod';
import {
  PayloadTooLargeError,
  UnprocessableRequestError,
  UnsupportedMediaTypeError,
  ValidationError,
} from './errors.js';

/**
 * The one module that reads request bodies and parameters. Limits, the same for every route:
 * - a body larger than the route's limit (`Http__MaxBodyBytes`, bulk provisioning `Http__MaxBulkBodyBytes`) is
 *   413, refused from `Content-Length` before anything is read, and never read past the limit otherwise;
 * - a declared Content-Type that is not JSON is 415; an absent one, and the defaults of the two commonest
 *   clients, `application/x-www-form-urlencoded` (`curl -d`) and `text/plain` (`fetch` with a string body),
 *   are read as JSON too;
 * - JSON nested deeper than MAX_JSON_DEPTH is 400 before it is parsed (deep nesting overflows the stack of
 *   every recursive walk after it: JSON.stringify, the SDKs' serializers).
 */

/** Deepest nesting of objects and arrays accepted in any JSON body (IoT Hub twins allow 10 levels). */
export const MAX_JSON_DEPTH = 32;

/** Default body limit, bytes (the setting Http__MaxBodyBytes overrides it): 1 MiB. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

/** Default limit of bulk provisioning bodies, bytes (Http__MaxBulkBodyBytes): 16 MiB. */
export const DEFAULT_MAX_BULK_BODY_BYTES = 16 * 1024 * 1024;

/** The parts of an HTTP request the API handlers read (the library's HttpRequest satisfies it). */
export interface ApiRequest {
  params: Record<string, string | undefined>;
  query: URLSearchParams;
  headers: { get(name: string): string | null };
  text(): Promise<string>;
  /** The body as a stream, when the platform gives one (HttpRequest does): read with a byte limit. */
  readonly body?: ReadableStream<Uint8Array> | null;
}

export interface ApiResponse {
  status: number;
  jsonBody?: unknown;
  headers?: Record<string, string>;
}

/** How a route reads its body. */
export interface BodyOptions {
  /** Largest body accepted, bytes; more is 413 (default DEFAULT_MAX_BODY_BYTES). */
  maxBytes?: number;
  /** Media types accepted besides JSON (`application/json`, `application/*+json`) and curl's default. */
  mediaTypes?: readonly string[];
}

const JSON_MEDIA_TYPE = /^application\/(?:[a-z0-9.!#$&^_-]+\+)?json$/;
/**
 * What `curl -d` (the README's walk-through posts JSON that way) and `fetch` with a string body declare when no
 * type is given. Accepting them opens no CSRF hole: every route but health and openapi.json needs a function key.
 */
const CLIENT_DEFAULTS = ['application/x-www-form-urlencoded', 'text/plain'];

/** 415 unless the declared Content-Type (if any) is JSON, curl's default, or one of `extra`; UTF-8 only. */
export function checkMediaType(request: ApiRequest, extra: readonly string[] = []): void {
  const header = request.headers.get('content-type');
  if (header === null || header.trim() === '') return;
  const [type = '', ...parameters] = header.split(';').map((part) => part.trim().toLowerCase());
  if (!JSON_MEDIA_TYPE.test(type) && !CLIENT_DEFAULTS.includes(type) && !extra.includes(type)) {
    throw new UnsupportedMediaTypeError(
      `This route reads JSON: send Content-Type application/json${extra.length > 0 ? ` or ${extra.join(', ')}` : ''}.`,
    );
  }
  const charset = parameters.find((p) => p.startsWith('charset='))?.slice('charset='.length);
  if (charset !== undefined && !['utf-8', 'utf8', '"utf-8"'].includes(charset)) {
    throw new UnsupportedMediaTypeError('Bodies are read as UTF-8: send charset=utf-8 or no charset.');
  }
}

/** The body as UTF-8 text, refused (413) above `maxBytes` without reading more than that. */
export async function readText(
  request: ApiRequest,
  maxBytes: number = DEFAULT_MAX_BODY_BYTES,
): Promise<string> {
  const declared = Number(request.headers.get('content-length') ?? '');
  if (Number.isFinite(declared) && declared > maxBytes) throw new PayloadTooLargeError(maxBytes);
  if (!request.body) {
    const text = await request.text();
    if (Buffer.byteLength(text, 'utf8') > maxBytes) throw new PayloadTooLargeError(maxBytes);
    return text;
  }
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      throw new PayloadTooLargeError(maxBytes);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** 400 when `text` nests objects and arrays deeper than MAX_JSON_DEPTH (one linear scan, no recursion). */
export function assertJsonDepth(text: string): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > MAX_JSON_DEPTH) {
        throw new ValidationError(`The body nests objects and arrays deeper than ${MAX_JSON_DEPTH} levels.`);
      }
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
}

/** Parses JSON text: malformed JSON or too deep is 400; an empty body counts as `{}` where the route allows it. */
export function parseJson(text: string, emptyAllowed: boolean): unknown {
  if (text.trim() === '') {
    if (emptyAllowed) return {};
    throw new ValidationError('A JSON body is required.');
  }
  assertJsonDepth(text);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ValidationError('The body is not valid JSON.');
  }
}

/** Reads a JSON body within the route's limits (415, 413, 400; see the top of this module). */
export async function readJson(
  request: ApiRequest,
  emptyAllowed: boolean,
  options: BodyOptions = {},
): Promise<unknown> {
  checkMediaType(request, options.mediaTypes);
  return parseJson(await readText(request, options.maxBytes ?? DEFAULT_MAX_BODY_BYTES), emptyAllowed);
}

/**
 * A path parameter. Hosts differ in how they decode malformed percent-encoding; whatever arrives, text that is
 * not well-formed Unicode (a lone surrogate) or longer than `maxLength` is refused (400) before any look-up.
 */
export function pathParam(request: ApiRequest, name: string, maxLength = 1024): string {
  const value = request.params[name] ?? '';
  if (value.length > maxLength || /\p{Cs}/u.test(value)) {
    throw new ValidationError(`Invalid path parameter '${name}'.`, [
      { path: name, message: `must be well-formed text of at most ${maxLength} characters` },
    ]);
  }
  return value;
}

/** Schema violations become 422 with one entry per violation (each unknown field named by its full path). */
export function parseRequest<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new UnprocessableRequestError(
    'The request does not match the API schema.',
    result.error.issues.flatMap((issue) => {
      const at = issue.path.map(String);
      if (issue.code === 'unrecognized_keys') {
        return issue.keys.map((key) => ({ path: [...at, key].join('.'), message: 'is not a known field' }));
      }
      return [{ path: at.join('.') || '(body)', message: issue.message }];
    }),
  );
}

/**
 * The query parameters as [name, value] pairs, without `code`: the function key when a caller sends it in the
 * query string (Azure Functions convention) is not a parameter of any route.
 */
export const queryParameters = (request: ApiRequest): [string, string][] =>
  [...request.query].filter(([key]) => key !== 'code');
