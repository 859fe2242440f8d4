import { describe, expect, it } from 'vitest';
import {
  MAX_JSON_DEPTH,
  fromEntityTag,
  ifMatch,
  pathParam,
  readJson,
  readText,
  toEntityTag,
  type ApiRequest,
} from '../../../src/shared/api-request.js';
import { toProblemResponse } from '../../../src/http/problem.js';
import {
  PayloadTooLargeError,
  UnsupportedMediaTypeError,
  ValidationError,
} from '../../../src/shared/errors.js';

const JSON_TYPE = { 'content-type': 'application/json' };

function request(
  body: string | ReadableStream<Uint8Array> | undefined,
  headers: Record<string, string> = JSON_TYPE,
  params: Record<string, string> = {},
): ApiRequest {
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  return {
    params,
    query: new URLSearchParams(),
    headers: { get: (name) => lower[name.toLowerCase()] ?? null },
    text: () =>
      typeof body === 'string'
        ? Promise.resolve(body)
        : Promise.reject(new Error('text() must not be called')),
    ...(typeof body === 'object' ? { body } : {}),
  };
}

/** A stream that never ends: reading it whole would never finish. */
function endless(chunkBytes: number): { stream: ReadableStream<Uint8Array>; pulled: () => number } {
  let pulled = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulled += chunkBytes;
      controller.enqueue(new Uint8Array(chunkBytes).fill(0x20));
    },
  });
  return { stream, pulled: () => pulled };
}

const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);

describe('reading request bodies (src/shared/api-request.ts)', () => {
  it('refuses a declared Content-Length above the limit before reading anything (413)', async () => {
    const { stream, pulled } = endless(1024);
    const error = await readJson(
      request(stream, { ...JSON_TYPE, 'content-length': String(2 * 1024 * 1024) }),
      false,
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PayloadTooLargeError);
    expect(pulled()).toBeLessThanOrEqual(64 * 1024); // at most what the stream pre-buffers on its own
    expect(toProblemResponse(error).status).toBe(413);
  });

  it('stops reading a stream once it passes the limit (413), even without Content-Length', async () => {
    const { stream, pulled } = endless(64 * 1024);
    await expect(readText(request(stream), 1024 * 1024)).rejects.toBeInstanceOf(PayloadTooLargeError);
    expect(pulled()).toBeLessThan(2 * 1024 * 1024);
  });

  it('reads a body within the limit, from the stream or from text()', async () => {
    const bytes = new TextEncoder().encode('{"a":"é"}');
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(bytes.slice(0, 7)); // splits the two bytes of é across chunks
        controller.enqueue(bytes.slice(7));
        controller.close();
      },
    });
    expect(await readJson(request(stream), false)).toEqual({ a: 'é' });
    expect(await readJson(request('{"b":1}'), false)).toEqual({ b: 1 });
    await expect(readText(request('x'.repeat(11)), 10)).rejects.toBeInstanceOf(PayloadTooLargeError);
  });

  it.each([
    [undefined, true],
    ['application/json', true],
    ['application/json; charset=utf-8', true],
    ['Application/JSON;Charset="UTF-8"', true],
    ['application/merge-patch+json', true],
    // curl -d declares form-urlencoded, fetch with a string body text/plain: neither says the body is JSON.
    ['application/x-www-form-urlencoded', false],
    ['text/plain;charset=UTF-8', false],
    ['text/plain', false],
    ['text/html', false],
    ['application/xml', false],
    ['multipart/form-data; boundary=x', false],
    ['application/json; charset=utf-16', false],
  ])('Content-Type %s accepted: %s (else 415)', async (type, accepted) => {
    const result = readJson(request('{}', type ? { 'content-type': type } : {}), false);
    if (accepted && type !== undefined) await expect(result).resolves.toEqual({});
    else if (accepted) {
      // No Content-Type: only a request without a body (the Functions worker labels a string body text/plain).
      await expect(result).rejects.toBeInstanceOf(UnsupportedMediaTypeError);
      expect(await readJson(request('', {}), true)).toEqual({});
    } else {
      const error = await result.catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UnsupportedMediaTypeError);
      const problem = toProblemResponse(error);
      expect(problem.status).toBe(415);
      expect(problem.body as string).toContain('application/json');
    }
  });

  it(`refuses JSON nested deeper than ${MAX_JSON_DEPTH} levels before parsing it (400)`, async () => {
    await expect(readJson(request(nested(10_000)), false)).rejects.toBeInstanceOf(ValidationError);
    await expect(readJson(request(`{"a":${nested(MAX_JSON_DEPTH)}}`), false)).rejects.toBeInstanceOf(
      ValidationError,
    );
    expect(await readJson(request(nested(MAX_JSON_DEPTH)), false)).toBeDefined();
    // Brackets inside strings (escaped quotes included) are text, not nesting.
    const text = JSON.stringify({ s: '[[[[{{{{\\"'.repeat(100) });
    expect(await readJson(request(text), false)).toEqual(JSON.parse(text));
  });

  it('refuses a path parameter that is not well-formed text, or too long (400)', () => {
    expect(() => pathParam(request('', {}, { id: '\ud800' }), 'id')).toThrow(ValidationError);
    expect(() => pathParam(request('', {}, { id: 'x'.repeat(1025) }), 'id')).toThrow(ValidationError);
    expect(pathParam(request('', {}, { id: 'dev-1😀' }), 'id')).toBe('dev-1😀');
  });
});

describe('If-Match (RFC 9110 §13.1.1)', () => {
  const parsed = (value: string | undefined) =>
    ifMatch(request('', value === undefined ? {} : { 'if-match': value }));

  it('is undefined when absent, and * (any current entity) when the value is *', () => {
    expect(parsed(undefined)).toBeUndefined();
    expect(parsed('*')).toBe('*');
    expect(parsed(' * ')).toBe('*');
  });

  it('lists the strong entity tags; weak ones are valid but never match; empty list elements are skipped', () => {
    expect(parsed('"a"')).toEqual({ tags: ['"a"'] });
    expect(parsed('"a", "b,c" ,"d"')).toEqual({ tags: ['"a"', '"b,c"', '"d"'] });
    expect(parsed('"a",,  ,"b"')).toEqual({ tags: ['"a"', '"b"'] });
    expect(parsed(' "a", ')).toEqual({ tags: ['"a"'] });
    expect(parsed('""')).toEqual({ tags: ['""'] });
    expect(parsed('W/"a", "b"')).toEqual({ tags: ['"b"'] });
    expect(parsed('W/"a"')).toEqual({ tags: [] });
  });

  it.each([
    '',
    '   ',
    ',',
    'abc',
    '"a',
    'a"',
    '"a" "b"',
    '"a"b',
    '*, "a"',
    '**',
    'w/"a"',
    'W/ "a"',
    '"a\u0001"',
  ])('refuses the malformed If-Match %j (400 problem)', (value) => {
    const error = (() => {
      try {
        return parsed(value);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ValidationError);
    expect(toProblemResponse(error).status).toBe(400);
  });

  it('keeps strong quoted store versions as they are and turns any other version into a strong tag, reversibly', () => {
    const versions = [
      '"00000a00-0000-0d00-0000-65f0c0de0000"', // Cosmos DB
      'AAAAAAAAAAE=', // IoT Hub twin, unquoted
      `W/"datetime'2026-12-02T11%3A06%3A23.1234567Z'"`, // Table storage, weak
      '"~looks-encoded"',
    ];
    expect(toEntityTag(versions[0] ?? '')).toBe(versions[0]);
    for (const version of versions) {
      const tag = toEntityTag(version);
      expect(parsed(tag)).toEqual({ tags: [tag] });
      expect(fromEntityTag(tag)).toBe(version);
    }
  });

  it.each(['"~"', '"~!!"', '"~Cg"', '"~4pyT"', '"~QUJD="'])(
    'an encoded tag that toEntityTag cannot have given (%s) names no version (review of issue 14)',
    (tag) => {
      expect(fromEntityTag(tag)).toBeUndefined();
    },
  );
});
