import { describe, expect, it } from 'vitest';
import { createAdapters } from '../../../src/infra/adapters.js';
import { makeProvisioningHandlers } from '../../../src/provisioning/http-handlers.js';
import { ProvisioningService } from '../../../src/provisioning/provisioning-service.js';
import { testConfig } from '../../support/local-env.js';
import { callHandler } from '../../support/handler-call.js';

/**
 * HTTP semantics of the device routes (issue 14): If-Match per RFC 9110 §13.1.1, the PATCH body shape
 * (`{ metadata }`, the bare form deprecated), and 422 for every schema violation, keys included.
 */
const config = testConfig({ IotHubHostName: 'testhub.azure-devices.net' });
const adapters = createAdapters(config);
const handlers = makeProvisioningHandlers(
  new ProvisioningService({
    ...adapters,
    hostName: config.provisioning.hostName,
    maxMetadataBytes: config.provisioning.maxMetadataBytes,
  }),
);

async function call(
  name: keyof typeof handlers,
  method: string,
  id: string,
  body?: unknown,
  headers: Record<string, string> = {},
) {
  const suffix = name === 'updateDeviceTwin' || name === 'getDeviceTwin' ? '/twin' : '';
  return callHandler(name, handlers[name], {
    method,
    path: `/api/devices/${encodeURIComponent(id)}${suffix}`,
    params: { id },
    headers,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

const register = (id: string, metadata: Record<string, unknown> = {}) =>
  call('registerDevice', 'POST', '', { id, metadata });
const patch = (id: string, body: unknown, headers: Record<string, string> = {}) =>
  call('updateDevice', 'PATCH', id, body, headers);
const metadataOf = async (id: string) => (await call('getDevice', 'GET', id)).body.metadata;

describe('If-Match on PATCH /api/devices/{id} (RFC 9110 §13.1.1)', () => {
  it('* matches the current device whatever its ETag; a missing device is 404 (the answer without the condition)', async () => {
    await register('im-star', { a: 1 });
    await patch('im-star', { metadata: { a: 2 } });
    const res = await patch('im-star', { metadata: { b: 3 } }, { 'if-match': '*' });
    expect(res.status).toBe(200);
    expect(res.body.metadata).toEqual({ a: 2, b: 3 });
    expect((await patch('im-nobody', { metadata: { b: 3 } }, { 'if-match': '*' })).status).toBe(404);
  });

  it.each(['', '   ', 'abc', '"unterminated', '*, "x"'])(
    'an empty or malformed If-Match %j is 400 and changes nothing',
    async (value) => {
      const id = `im-bad-${Buffer.from(value).toString('hex')}`;
      await register(id, { a: 1 });
      const res = await patch(id, { metadata: { a: 2 } }, { 'if-match': value });
      expect(res.status).toBe(400);
      expect(res.headers['content-type']).toBe('application/problem+json');
      expect(res.body).toMatchObject({ status: 400, title: 'Bad Request' });
      expect(String(res.body.detail)).toMatch(/If-Match/);
      expect(await metadataOf(id)).toEqual({ a: 1 });
    },
  );

  it('a weak tag never matches, even with the current opaque value (412)', async () => {
    const created = await register('im-weak', { a: 1 });
    const etag = created.headers.etag ?? '';
    expect(etag).toMatch(/^"[^"]*"$/);
    expect((await patch('im-weak', { metadata: { a: 2 } }, { 'if-match': `W/${etag}` })).status).toBe(412);
    expect(await metadataOf('im-weak')).toEqual({ a: 1 });
  });

  it.each(['"~"', '"~!!"', '"~Cg"', '"~4pyT"', '"~ABC"'])(
    'an encoded-looking tag no version of ours can have (%s) is 412 and changes nothing (review of issue 14)',
    async (value) => {
      const id = `im-enc-${Buffer.from(value).toString('hex')}`;
      await register(id, { a: 1 });
      expect((await patch(id, { metadata: { a: 2 } }, { 'if-match': value })).status).toBe(412);
      expect((await patch(id, { metadata: { a: 2 } }, { 'if-match': `${value}, "nope"` })).status).toBe(412);
      expect(await metadataOf(id)).toEqual({ a: 1 });
    },
  );

  it('a list matches when any of its tags is current; a list of stale tags is 412', async () => {
    const created = await register('im-list', { a: 1 });
    const first = created.headers.etag ?? '';
    const second = (await patch('im-list', { metadata: { a: 2 } })).headers.etag ?? '';
    expect(second).not.toBe(first);
    const listed = await patch(
      'im-list',
      { metadata: { a: 3 } },
      { 'if-match': `"stale", ${second}, W/"x"` },
    );
    expect(listed.status).toBe(200);
    expect(listed.body.metadata).toEqual({ a: 3 });
    const stale = await patch('im-list', { metadata: { a: 4 } }, { 'if-match': `${first}, ${second}` });
    expect(stale.status).toBe(412);
    expect(await metadataOf('im-list')).toEqual({ a: 3 });
  });
});

describe('If-Match on PATCH /api/devices/{id}/twin', () => {
  const twin = (id: string, desired: unknown, headers: Record<string, string> = {}) =>
    call('updateDeviceTwin', 'PATCH', id, { desired }, headers);

  it('sends a strong ETag, honours it, *, lists; 400 for empty or malformed, 412 for weak or stale', async () => {
    await register('tw-1');
    const first = await twin('tw-1', { a: 1 });
    expect(first.status).toBe(200);
    const etag = first.headers.etag ?? '';
    expect(etag).toMatch(/^"[\x21\x23-\x7e]*"$/);
    expect((await twin('tw-1', { a: 2 }, { 'if-match': `W/${etag}` })).status).toBe(412);
    expect((await twin('tw-1', { a: 2 }, { 'if-match': '' })).status).toBe(400);
    expect((await twin('tw-1', { a: 2 }, { 'if-match': 'not-quoted' })).status).toBe(400);
    const listed = await twin('tw-1', { a: 2 }, { 'if-match': `"stale", ${etag}` });
    expect(listed.status).toBe(200);
    expect((await twin('tw-1', { a: 3 }, { 'if-match': etag })).status).toBe(412);
    const star = await twin('tw-1', { a: 3 }, { 'if-match': '*' });
    expect(star.status).toBe(200);
    expect(star.body.desired).toEqual({ a: 3 });
    expect((await twin('tw-1', { a: 4 }, { 'if-match': star.headers.etag ?? '' })).status).toBe(200);
    expect((await twin('tw-nobody', { a: 1 }, { 'if-match': '*' })).status).toBe(404);
  });
});

describe('PATCH /api/devices/{id} body shape', () => {
  it('takes { metadata } like register: merged, never stored as metadata.metadata, no Deprecation header', async () => {
    await register('shape-1', { a: 1 });
    const res = await patch('shape-1', { metadata: { b: 2, a: null } });
    expect(res.status).toBe(200);
    expect(res.body.metadata).toEqual({ b: 2 });
    expect(res.headers.deprecation).toBeUndefined();
    expect(await metadataOf('shape-1')).toEqual({ b: 2 });
  });

  it('still takes bare metadata during the deprecation window, answering Deprecation (RFC 9745) and Sunset', async () => {
    await register('shape-2', { a: 1 });
    const res = await patch('shape-2', { b: 2 });
    expect(res.status).toBe(200);
    expect(res.body.metadata).toEqual({ a: 1, b: 2 });
    expect(res.headers.deprecation).toMatch(/^@\d+$/);
    expect(new Date(res.headers.sunset ?? '').getTime()).toBeGreaterThan(
      Number(res.headers.deprecation?.slice(1)) * 1000,
    );
    expect(res.headers.link).toMatch(/rel="deprecation"/);
  });

  it('refuses an unknown top-level key beside metadata (422 naming it) and stores nothing', async () => {
    await register('shape-3', { a: 1 });
    const res = await patch('shape-3', { metadata: { b: 2 }, status: 'disabled' });
    expect(res.status).toBe(422);
    expect(res.body.errors).toEqual([{ path: 'status', message: 'is not a known field' }]);
    expect(await metadataOf('shape-3')).toEqual({ a: 1 });
    expect((await patch('shape-3', { metadata: 'x' })).status).toBe(422);
    expect(await metadataOf('shape-3')).toEqual({ a: 1 });
  });
});

describe('keys that break the API schema are 422, like every schema violation', () => {
  const badKeys = { primaryKey: 'c2hvcnQ=', secondaryKey: 'c2hvcnQ=' };

  it('POST /api/devices/{id}/reset-credentials', async () => {
    await register('keys-1');
    const res = await call('resetCredentials', 'POST', 'keys-1', { keys: badKeys });
    expect(res.status).toBe(422);
    expect(res.body).toMatchObject({ status: 422, type: 'urn:problem-type:unprocessable-request' });
    expect(res.body.errors).toEqual([
      { path: 'keys.primaryKey', message: 'must be base64 of 16 to 64 bytes' },
      { path: 'keys.secondaryKey', message: 'must be base64 of 16 to 64 bytes' },
      { path: 'keys.secondaryKey', message: 'must differ from primaryKey' },
    ]);
    expect(JSON.stringify(res.body)).not.toContain(badKeys.primaryKey);
    const wrongType = await call('resetCredentials', 'POST', 'keys-1', { keys: { primaryKey: 1 } });
    expect(wrongType.status).toBe(422);
  });

  it('POST /api/devices', async () => {
    const res = await call('registerDevice', 'POST', '', { id: 'keys-2', keys: badKeys });
    expect(res.status).toBe(422);
    expect((await call('getDevice', 'GET', 'keys-2')).status).toBe(404);
  });
});

describe('If-Match on activate, deactivate and DELETE (review of issue 14: it was ignored)', () => {
  it('a stale tag is 412 and changes nothing: the identity keeps its status, the entry stays', async () => {
    const created = await register('im-life', { a: 1 });
    const stale = created.headers.etag ?? '';
    const fresh = (await patch('im-life', { metadata: { a: 2 } })).headers.etag ?? '';
    expect(fresh).not.toBe(stale);
    const refused = await call('deactivateDevice', 'POST', 'im-life', undefined, { 'if-match': stale });
    expect(refused.status).toBe(412);
    expect((await adapters.identities.get('im-life'))?.status).toBe('enabled');
    expect((await call('getDevice', 'GET', 'im-life')).body.status).toBe('enabled');
    expect(
      (await call('unregisterDevice', 'DELETE', 'im-life', undefined, { 'if-match': stale })).status,
    ).toBe(412);
    expect((await call('getDevice', 'GET', 'im-life')).status).toBe(200);
    expect(await adapters.identities.get('im-life')).toBeDefined();
  });

  it('the current tag, a list naming it, or * is applied; empty is 400', async () => {
    const created = await register('im-life-ok');
    const disabled = await call('deactivateDevice', 'POST', 'im-life-ok', undefined, {
      'if-match': `"nope", ${created.headers.etag ?? ''}`,
    });
    expect(disabled.status).toBe(200);
    expect((await adapters.identities.get('im-life-ok'))?.status).toBe('disabled');
    const enabled = await call('activateDevice', 'POST', 'im-life-ok', undefined, { 'if-match': '*' });
    expect(enabled.status).toBe(200);
    expect(
      (await call('unregisterDevice', 'DELETE', 'im-life-ok', undefined, { 'if-match': '' })).status,
    ).toBe(400);
    const deleted = await call('unregisterDevice', 'DELETE', 'im-life-ok', undefined, {
      'if-match': enabled.headers.etag ?? '',
    });
    expect(deleted.status).toBe(204);
    expect(await adapters.identities.get('im-life-ok')).toBeUndefined();
  });
});
