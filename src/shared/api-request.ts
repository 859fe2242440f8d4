import type { z } from 'zod';
import {
  PayloadTooLargeError,
  PreconditionFailedError,
  UnprocessableRequestError,
  UnsupportedMediaTypeError,
  ValidationError,
} from './errors.js';

/**
 * The one module that reads request bodies and parameters. Limits, the same for every route:
 * - a body larger than the route's limit (`Http__MaxBodyBytes`, bulk provisioning `Http__MaxBulkBodyBytes`) is
 *   413, refused from `Content-Length` before anything is read, and never read past the limit otherwise;
 * - a body must be declared JSON (`application/json`, `application/*+json`, UTF-8): anything else is 415,
 *   `application/x-www-form-urlencoded` (`curl -d`) and `text/plain` (`fetch` with a string body) included, and
 *   so is a body without a Content-Type (the Functions worker labels such a body `text/plain;charset=UTF-8`, so
 *   in Azure "absent" cannot be told apart from `text/plain`); a request without a body needs no type;
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
  /** Media types accepted besides JSON (`application/json`, `application/*+json`). */
  mediaTypes?: readonly string[];
}

const JSON_MEDIA_TYPE = /^application\/(?:[a-z0-9.!#$&^_-]+\+)?json$/;

/** What every 415 of a JSON route tells the caller to send. */
const SEND_JSON = 'Send Content-Type: application/json (or application/*+json), charset utf-8 or none';

/**
 * 415 unless the declared Content-Type (if any) is JSON or one of `extra`, in UTF-8. A request that declares no
 * type passes here; readJson refuses it once it turns out to have a body.
 */
export function checkMediaType(request: ApiRequest, extra: readonly string[] = []): void {
  const header = request.headers.get('content-type');
  if (header === null || header.trim() === '') return;
  const [type = '', ...parameters] = header.split(';').map((part) => part.trim().toLowerCase());
  const also = extra.length > 0 ? ` (or ${extra.join(', ')})` : '';
  if (!JSON_MEDIA_TYPE.test(type) && !extra.includes(type)) {
    throw new UnsupportedMediaTypeError(`This route reads JSON, not ${type || 'that'}. ${SEND_JSON}${also}.`);
  }
  const charset = parameters.find((p) => p.startsWith('charset='))?.slice('charset='.length);
  if (charset !== undefined && !['utf-8', 'utf8', '"utf-8"'].includes(charset)) {
    throw new UnsupportedMediaTypeError(`Bodies are read as UTF-8, not ${charset}. ${SEND_JSON}${also}.`);
  }
}

/** 415 for a body sent without a Content-Type (see the top of this module). */
function checkDeclared(request: ApiRequest, text: string, extra: readonly string[] = []): void {
  if (text.trim() === '' || (request.headers.get('content-type') ?? '').trim() !== '') return;
  const also = extra.length > 0 ? ` (or ${extra.join(', ')})` : '';
  throw new UnsupportedMediaTypeError(`The body has no Content-Type. ${SEND_JSON}${also}.`);
}

/** Reads a body of a route that takes JSON or one of `extra` media types: 415 and 413 as in readJson. */
export async function readDeclaredText(
  request: ApiRequest,
  maxBytes: number = DEFAULT_MAX_BODY_BYTES,
  extra: readonly string[] = [],
): Promise<string> {
  checkMediaType(request, extra);
  const text = await readText(request, maxBytes);
  checkDeclared(request, text, extra);
  return text;
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
  const text = await readDeclaredText(
    request,
    options.maxBytes ?? DEFAULT_MAX_BODY_BYTES,
    options.mediaTypes,
  );
  return parseJson(text, emptyAllowed);
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

/**
 * A parsed If-Match (RFC 9110 §13.1.1): `*` (any current representation) or the strong entity tags it lists.
 * Weak tags (`W/"…"`) are well-formed but never match (If-Match compares strongly), so they are left out.
 */
export type IfMatch = '*' | { readonly tags: readonly string[] };

/** One list element of If-Match: optional whitespace, an entity-tag or nothing, whitespace, then `,` or the end. */
const IF_MATCH_ELEMENT = /[ \t]*(?:(W\/)?("[\x21\x23-\x7e\x80-\xff]*"))?[ \t]*(,|$)/y;

/**
 * The request's If-Match, undefined when absent. An empty value, or anything that is neither `*` nor a list of
 * quoted entity tags, is 400: a precondition we cannot read is refused, never dropped.
 */
export function ifMatch(request: ApiRequest): IfMatch | undefined {
  const value = request.headers.get('if-match');
  if (value === null) return undefined;
  if (value.trim() === '*') return '*';
  const tags: string[] = [];
  let seen = 0;
  IF_MATCH_ELEMENT.lastIndex = 0;
  // Every element but the last consumes its comma, so this ends within value.length + 1 rounds.
  for (;;) {
    const match = IF_MATCH_ELEMENT.exec(value);
    if (!match) return malformedIfMatch();
    const [, weak, tag, separator] = match;
    if (tag !== undefined) seen++;
    if (tag !== undefined && weak === undefined) tags.push(tag);
    if (separator === '') return seen > 0 ? { tags } : malformedIfMatch();
  }
}

function malformedIfMatch(): never {
  throw new ValidationError(
    'Malformed If-Match: send * or a comma-separated list of quoted entity tags, such as the ETag of a response.',
    [{ path: 'If-Match', message: 'must be * or a list of entity tags ("…")' }],
  );
}

/** A store version that is a strong entity tag already (Cosmos DB's) and never starts like an encoded one. */
const STRONG_TAG = /^"(?!~)[\x21\x23-\x7e]*"$/;

/**
 * The ETag header for a store's version token. A strong quoted tag (Cosmos DB) is sent as it is; any other token
 * (IoT Hub twins: unquoted; Table storage: weak `W/"datetime'…'"`) would be a malformed or never-matching
 * If-Match when echoed, so it is sent as a strong tag that fromEntityTag turns back into the token.
 */
export const toEntityTag = (version: string): string =>
  STRONG_TAG.test(version) ? version : `"~${Buffer.from(version, 'utf8').toString('base64url')}"`;

/** What a store may be handed as a version: printable ASCII (it goes into a header), never empty. */
const VERSION_TOKEN = /^[\x20-\x7e]+$/;

/**
 * The store's version token for an entity tag of a request (inverse of toEntityTag); undefined for a tag no
 * version of ours can have (an encoded tag that is not exactly what toEntityTag gives for a printable token), so
 * a client's bytes never reach a store as a condition it might ignore or choke on.
 */
export function fromEntityTag(tag: string): string | undefined {
  if (!tag.startsWith('"~')) return tag;
  const version = Buffer.from(tag.slice(2, -1), 'base64url').toString('utf8');
  return VERSION_TOKEN.test(version) && toEntityTag(version) === tag ? version : undefined;
}

/**
 * What a store with single-version conditional writes takes for the request's If-Match: undefined for none and
 * for `*` (any current entity: a missing one is 404 like the request without the condition, RFC 9110 §13.2.1),
 * else the one version listed, or the current version when the list names it (read with `currentVersion`,
 * which throws for a missing entity), and 412 when no listed tag can match.
 */
export async function ifMatchVersion(
  request: ApiRequest,
  currentVersion: () => Promise<string>,
): Promise<string | undefined> {
  const condition = ifMatch(request);
  if (condition === undefined || condition === '*') return undefined;
  const versions = condition.tags.map(fromEntityTag).filter((v): v is string => v !== undefined);
  if (versions.length === 0)
    throw new PreconditionFailedError('None of the entity tags in If-Match is one this API issues.');
  if (versions.length === 1 && condition.tags.length === 1) return versions[0];
  const current = await currentVersion();
  if (versions.includes(current)) return current;
  throw new PreconditionFailedError('None of the entity tags in If-Match is the current one.');
}
