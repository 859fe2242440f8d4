/**
 * Fuzz over the OpenAPI document, through the embedded local runtime over real HTTP: every operation (and the
 * device gateway and direct-method routes) with malformed path parameters, query strings, headers and bodies.
 * Bounded (at most MAX_REQUESTS requests, drawn with a seeded PRNG so a failure replays), and it asserts that
 * no answer is a 5xx and that nothing wrote a stack trace or an "Unhandled error" to the log.
 */
import { request as httpRequest } from 'node:http';
import { fileURLToPath } from 'node:url';
import pLimit from 'p-limit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openApiDocument } from '../../../src/http/openapi.js';
import { startRuntime, type Runtime } from '../../../tools/local-runtime/runtime.js';
import { testSettings } from '../../support/local-env.js';
import { seededRandom } from '../../../tools/seeded-random.js';

const SEED = 0x5eed_2024;
const MAX_REQUESTS = 1_800;

/** Path segments as they go on the wire (already percent-encoded, malformed on purpose). */
const SEGMENTS = [
  '%ZZ',
  '%',
  '%E0%A4%A',
  '%ED%A0%80',
  '%C0%AF',
  '%FF',
  '%00',
  '%2F',
  'a%2Fb',
  'a%5Cb',
  'a%23b',
  'a%3Fb',
  'a%20b',
  'a%09b',
  '%2E%2E',
  'x'.repeat(10_000),
  'x'.repeat(129),
  encodeURIComponent('héllo'),
  encodeURIComponent('😀'),
  '%27%22%3Cscript%3E',
  '%25',
  '%2525',
  'provision-00000000-0000-0000-0000-000000000000',
  'job-00000000-0000-0000-0000-000000000000',
];

const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
const deepObject = (n: number) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);
/** Bodies: malformed JSON, deep nesting, wrong shapes, odd values and one larger than any limit. */
const BODIES = [
  '',
  '{',
  '{"a":',
  'null',
  '[]',
  '1',
  '"x"',
  'true',
  deep(10_000),
  deepObject(10_000),
  `{"metadata":${deepObject(10_000)}}`,
  `{"desired":${deepObject(10_000)}}`,
  `[{"id":"a","metadata":${deepObject(10_000)}}]`,
  `{"type":"directMethod","target":{"deviceIds":["a"]},"method":{"name":"m","payload":${deep(10_000)}}}`,
  `{"id":"${'x'.repeat(10_000)}"}`,
  '{"id":"\\ud800"}',
  '{"id":5}',
  '{"metadata":{"a":1e999}}',
  '{"__proto__":{"polluted":1}}',
  '{"constructor":{"prototype":{"polluted":1}}}',
  `{"metadata":{"big":"${'x'.repeat(17 * 1024 * 1024)}"}}`,
  '\u0000\u0001\u0002',
  'a=b&c=d',
];

const CONTENT_TYPES = [
  undefined,
  'application/json',
  'application/merge-patch+json',
  'application/x-www-form-urlencoded',
  'text/html',
  'application/xml',
  'multipart/form-data; boundary=x',
  'application/json; charset=utf-16',
  ';;;',
];

const QUERY_VALUES = [
  '{"compositeToken":"x"}',
  '[{"compositeToken":"x","orderByItems":[]}]',
  '{"token":"x","range":{"min":"","max":"FF"}}',
  '%ZZ',
  '-1',
  '0',
  '1e999',
  'NaN',
  '',
  'true',
  'x'.repeat(5_000),
  '\u0000',
];

const HEADERS: Record<string, string>[] = [
  { 'if-match': '*' },
  { 'if-match': 'W/"garbage"' },
  { 'if-match': '"x"'.repeat(1000) },
  { authorization: 'SharedAccessSignature sr=x&sig=y&se=notanumber' },
  { accept: 'application/xml' },
];

interface Case {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

/** Every operation of the document, with `{param}` left in the path. */
function documentOperations() {
  const out: { method: string; path: string; query: string[]; hasBody: boolean }[] = [];
  for (const [path, item] of Object.entries(openApiDocument.paths)) {
    for (const [method, value] of Object.entries(item)) {
      if (method === 'parameters') continue;
      const op = value as { parameters?: { name: string; in: string }[]; requestBody?: unknown };
      out.push({
        method: method.toUpperCase(),
        path,
        query: (op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name),
        hasBody: op.requestBody !== undefined,
      });
    }
  }
  return out;
}

/** The device-facing routes the embedded runtime serves besides the API (IoT Hub's device HTTPS API). */
const DEVICE_ROUTES = [
  { method: 'POST', path: '/devices/{id}/messages/events', body: true },
  { method: 'GET', path: '/devices/{id}/methods/pending?waitSeconds=0', body: false },
  { method: 'POST', path: '/devices/{id}/methods/{id}/response', body: true },
];

function buildCases(random: () => number): Case[] {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const fill = (path: string, segment: string) => path.replace(/\{[^}]+\}/g, segment);
  const cases: Case[] = [];
  for (const op of documentOperations()) {
    const api = (path: string) => `/api${path}`;
    const hasParams = op.path.includes('{');
    if (hasParams) {
      for (const segment of SEGMENTS) cases.push({ method: op.method, path: api(fill(op.path, segment)) });
    }
    const base = api(fill(op.path, 'fuzz-device'));
    for (const name of op.query) {
      for (const value of QUERY_VALUES) {
        cases.push({ method: op.method, path: `${base}?${name}=${encodeURIComponent(value)}` });
      }
    }
    // Raw, malformed query strings too.
    cases.push({ method: op.method, path: `${base}?%ZZ=%E0%A4%A&top=%` });
    for (const headers of HEADERS) cases.push({ method: op.method, path: base, headers });
    if (op.hasBody || op.method === 'POST' || op.method === 'PATCH') {
      for (const body of BODIES) {
        const type = pick(CONTENT_TYPES);
        cases.push({
          method: op.method,
          path: base,
          body,
          ...(type ? { headers: { 'content-type': type } } : {}),
        });
      }
    }
  }
  for (const route of DEVICE_ROUTES) {
    for (const segment of SEGMENTS) {
      cases.push({
        method: route.method,
        path: fill(route.path, segment),
        headers: { authorization: pick(['', 'SharedAccessSignature sr=a&sig=b&se=1', 'x']) },
        ...(route.body ? { body: pick(BODIES.slice(0, 12)) } : {}),
      });
    }
  }
  return cases;
}

describe('OpenAPI fuzz over the embedded runtime (real HTTP)', () => {
  let runtime: Runtime;
  const logs: string[] = [];

  beforeAll(async () => {
    runtime = await startRuntime({
      settings: testSettings({ Provisioning__RegistryOpsPerMinute: '100000' }),
      port: 0,
      log: (message) => logs.push(message),
      functionsCore: fileURLToPath(new URL('../../support/functions-core.cjs', import.meta.url)),
    });
  });
  afterAll(async () => {
    await runtime.stop();
  });

  it(`answers every malformed request (<= ${MAX_REQUESTS}) without a 5xx or a stack trace`, async () => {
    const random = seededRandom(SEED);
    const all = buildCases(random);
    // Shuffle (Fisher-Yates) with the seeded PRNG, then bound the count.
    for (let i = all.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [all[i], all[j]] = [all[j] as Case, all[i] as Case];
    }
    const cases = all.slice(0, MAX_REQUESTS);
    const failures: string[] = [];
    const limit = pLimit(6);
    await Promise.all(
      cases.map((c) =>
        limit(async () => {
          const response = await fetch(`${runtime.origin}${c.path}`, {
            method: c.method,
            headers: c.headers ?? {},
            ...(c.body !== undefined && c.method !== 'GET' && c.method !== 'DELETE' ? { body: c.body } : {}),
          }).catch((error: unknown) => ({ status: 599, text: () => Promise.resolve(String(error)) }));
          const text = await response.text();
          if (response.status >= 500) {
            failures.push(
              `${c.method} ${c.path.slice(0, 120)} [${c.body?.slice(0, 40) ?? ''}] → ${response.status} ${text.slice(0, 200)}`,
            );
          }
          expect(text).not.toMatch(/\n\s+at /);
        }),
      ),
    );
    expect(cases.length).toBeGreaterThan(800);
    expect(failures).toEqual([]);
    expect(logs.filter((line) => /\n\s+at |Unhandled error/.test(line))).toEqual([]);
  }, 300_000);

  const call = async (method: string, path: string, body?: string, headers: Record<string, string> = {}) => {
    const response = await fetch(`${runtime.origin}${path}`, {
      method,
      // fetch labels a string body text/plain, which JSON routes refuse (415): declare JSON unless told otherwise.
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      ...(body === undefined ? {} : { body }),
    });
    return {
      status: response.status,
      type: response.headers.get('content-type'),
      retryAfter: response.headers.get('retry-after'),
      text: await response.text(),
    };
  };

  it.each(['%ZZ', '%', '%E0%A4%A', '%ED%A0%80'])(
    'answers a malformed percent-encoding (%s) with 400 problem+json, on the API and the device routes',
    async (segment) => {
      for (const [method, path] of [
        ['GET', `/api/devices/${segment}`],
        ['POST', `/api/alarms/${segment}/acknowledge`],
        ['GET', `/api/jobs/${segment}`],
        ['GET', `/api/provisioning/${segment}`],
        ['POST', `/devices/${segment}/messages/events`],
        ['GET', `/devices/${segment}/methods/pending`],
      ] as const) {
        const answer = await call(method, path);
        expect([method, path, answer.status, answer.type]).toEqual([
          method,
          path,
          400,
          'application/problem+json',
        ]);
      }
    },
  );

  it.each([
    ['a%2Fb', 'a%2Fb'],
    ['a%5Cb', 'a%5Cb'],
    ['a%23b', 'a%23b'],
    ['a%3Fb', 'a%3Fb'],
    ['a%20b', 'a%20b'],
    ['a%09b', 'a%09b'],
    ['10,000 characters', 'x'.repeat(10_000)],
  ])('answers an alarm id that cannot be one (%s) with 404 on acknowledge and close', async (_label, id) => {
    expect((await call('POST', `/api/alarms/${id}/acknowledge`)).status).toBe(404);
    expect((await call('POST', `/api/alarms/${id}/close`)).status).toBe(404);
  });

  it.each(['/api/alarms', '/api/jobs', '/api/devices'])(
    'answers a continuation token it never issued on %s with 400',
    async (path) => {
      for (const token of ['{"compositeToken":"x"}', '[{"compositeToken":"x"}]', '\u0000', 'true']) {
        const answer = await call('GET', `${path}?continuationToken=${encodeURIComponent(token)}`);
        expect([token, answer.status]).toEqual([token, 400]);
      }
    },
  );

  it('answers JSON nested 10,000 deep with 400 on every JSON route', async () => {
    const deepBody = deepObject(10_000);
    for (const [method, path, body] of [
      ['POST', '/api/devices', `{"metadata":${deepBody}}`],
      ['PATCH', '/api/devices/fuzz-device', deepBody],
      ['POST', '/api/devices/fuzz-device/activate', `{"metadata":${deepBody}}`],
      ['POST', '/api/devices/fuzz-device/deactivate', `{"metadata":${deepBody}}`],
      ['PATCH', '/api/devices/fuzz-device/twin', `{"desired":${deepBody}}`],
      ['POST', '/api/provisioning/devices', `{"metadata":${deepBody}}`],
      ['POST', '/api/provisioning/bulk', `[{"id":"a","metadata":${deepBody}}]`],
      ['POST', '/api/jobs', `{"type":"directMethod","method":{"name":"m","payload":${deepBody}}}`],
    ] as const) {
      expect([path, (await call(method, path, body)).status]).toEqual([path, 400]);
    }
  });

  it('answers 413 above the body limit, and 415 saying what to send for a body not declared JSON', async () => {
    const big = `{"metadata":{"a":"${'x'.repeat(1024 * 1024)}"}}`;
    expect((await call('POST', '/api/devices', big, { 'content-type': 'application/json' })).status).toBe(
      413,
    );
    // Bulk provisioning has its own, larger limit: this body is read (and refused as malformed, not as large).
    expect((await call('POST', '/api/provisioning/bulk', `[${big}`)).status).toBe(400);
    expect((await call('POST', '/api/devices', '{}', { 'content-type': 'text/html' })).status).toBe(415);
    // What `curl -d` sends without -H 'content-type: application/json'.
    const curl = await call('POST', '/api/devices', '{"id":"curl-d-device"}', {
      'content-type': 'application/x-www-form-urlencoded',
    });
    expect([curl.status, curl.type]).toEqual([415, 'application/problem+json']);
    expect(curl.text).toContain('Content-Type: application/json');
  });

  it('answers 413 from Content-Length alone, without waiting for the body', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${runtime.origin}/api/devices`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': String(10 * 1024 ** 3) },
      });
      req.on('response', (res) => {
        resolve(res.statusCode ?? 0);
        res.resume();
        req.destroy();
      });
      req.on('error', reject);
      req.write('{"id":'); // 10 GiB announced, a few bytes sent: the answer cannot wait for the rest
    });
    expect(status).toBe(413);
  });
});
