import { CosmosClient } from '@azure/cosmos';
import { InvocationContext } from '@azure/functions';
import { Agent } from 'node:https';
import { describe, expect, it } from 'vitest';
import { createAdapters } from '../../../src/infra/adapters.js';
import { TableIdentityStore } from '../../../src/infra/tables/table-identity-store.js';
import { makeProvisioningHandlers } from '../../../src/provisioning/http-handlers.js';
import { ProvisioningService } from '../../../src/provisioning/provisioning-service.js';
import { createSasToken } from '../../../src/provisioning/sas-token.js';
import { iotHubBatch } from '../../support/iothub-batch.js';
import { testConfig } from '../../support/local-env.js';
import { callHandler, type HandlerReply } from '../../support/handler-call.js';
import { responseProblems } from '../../support/openapi.js';
import { makeIngestTelemetry } from '../../../src/telemetry/ingest-telemetry.js';

const config = testConfig({ IotHubHostName: 'testhub.azure-devices.net' });
const adapters = createAdapters(config);
const handlers = makeProvisioningHandlers(
  new ProvisioningService({
    ...adapters,
    hostName: config.provisioning.hostName,
    maxMetadataBytes: config.provisioning.maxMetadataBytes,
  }),
);
const logs: string[] = [];
/** Every key the API handed out during this file, to prove it never shows up where it must not. */
const issuedKeys = new Set<string>();

async function call(
  name: keyof typeof handlers,
  init: {
    method: string;
    path: string;
    params?: Record<string, string>;
    body?: string;
    headers?: Record<string, string>;
  },
): Promise<HandlerReply> {
  const reply = await callHandler(name, handlers[name], {
    ...init,
    logHandler: (level, ...args) =>
      logs.push(`${level} ${args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ')}`),
  });
  const { body, headers } = reply;
  // Every response must match what openapi.json declares for its operation and status.
  const operationId = name === 'resetCredentials' ? 'resetDeviceCredentials' : name;
  expect(responseProblems(operationId, reply.status, body, headers['content-type'])).toEqual([]);
  const keys = body.keys as { primaryKey?: string; secondaryKey?: string } | undefined;
  if (keys?.primaryKey) issuedKeys.add(keys.primaryKey);
  if (keys?.secondaryKey) issuedKeys.add(keys.secondaryKey);
  return reply;
}

const register = (body: unknown) =>
  call('registerDevice', { method: 'POST', path: '/api/devices', body: JSON.stringify(body) });
const get = (id: string) =>
  call('getDevice', { method: 'GET', path: `/api/devices/${encodeURIComponent(id)}`, params: { id } });
const post = (
  name: 'activateDevice' | 'deactivateDevice' | 'resetCredentials',
  id: string,
  action: string,
  body?: unknown,
) =>
  call(name, {
    method: 'POST',
    path: `/api/devices/${encodeURIComponent(id)}/${action}`,
    params: { id },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
const identities = (() => {
  if (!(adapters.identities instanceof TableIdentityStore))
    throw new Error('expected the table identity store');
  return adapters.identities;
})();

describe('provisioning API over HttpRequest/InvocationContext, on Azurite + the local Cosmos DB server', () => {
  it('registers with a service-assigned id: 201, keys and connection string once, ETag and Location', async () => {
    const res = await register({ metadata: { model: 'TH-1', site: 'north' } });
    expect(res.status).toBe(201);
    const id = res.body.id as string;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.body).toMatchObject({ status: 'enabled', metadata: { model: 'TH-1', site: 'north' } });
    const keys = res.body.keys as { primaryKey: string };
    expect(res.body.connectionString).toBe(
      `HostName=testhub.azure-devices.net;DeviceId=${id};SharedAccessKey=${keys.primaryKey}`,
    );
    expect(res.headers.etag).toBeTruthy();
    expect(res.headers.location).toBe(`/api/devices/${id}`);
    expect((await identities.get(id))?.status).toBe('enabled');
  });

  it('registers with a given id and given keys; refuses a duplicate (409), a bad id (400), unknown fields (422), bad JSON (400)', async () => {
    const keys = {
      primaryKey: Buffer.alloc(32, 1).toString('base64'),
      secondaryKey: Buffer.alloc(32, 2).toString('base64'),
    };
    const res = await register({ id: 'api-1#a', keys });
    expect(res.status).toBe(201);
    expect(res.body.keys).toEqual(keys);
    expect((await register({ id: 'api-1#a' })).status).toBe(409);
    expect((await register({ id: 'bad id' })).status).toBe(400);
    const unknown = await register({
      id: 'api-x',
      colour: 'red',
      keys: { primaryKey: 'a', secondaryKey: 'b', extra: 1 },
    });
    expect(unknown.status).toBe(422);
    expect(unknown.headers['content-type']).toBe('application/problem+json');
    expect((unknown.body.errors as { path: string }[]).map((e) => e.path).sort()).toEqual(
      ['colour', 'keys.extra'].sort(),
    );
    expect(
      (await call('registerDevice', { method: 'POST', path: '/api/devices', body: '{"id":' })).status,
    ).toBe(400);
    expect((await register({ id: 'api-big', metadata: { blob: 'x'.repeat(9000) } })).status).toBe(422);
    expect(await identities.get('api-big')).toBeUndefined();
  });

  it('reads a device without keys, with its ETag; 404 for an unknown one', async () => {
    await register({ id: 'api-2', metadata: { floor: 2 } });
    const res = await get('api-2');
    expect(res.status).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(['createdAt', 'id', 'metadata', 'status', 'updatedAt']);
    expect(res.headers.etag).toBeTruthy();
    expect((await get('bad id')).status).toBe(400);
    const missing = await get('api-nobody');
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ status: 404, type: 'urn:problem-type:device-not-found' });
  });

  it('lists by status and metadata with paging; refuses unknown parameters (422)', async () => {
    for (const i of [1, 2, 3]) await register({ id: `list-${i}`, metadata: { fleet: 'blue', rank: i } });
    await post('deactivateDevice', 'list-2', 'deactivate');
    const page = (q: string) => call('listDevices', { method: 'GET', path: `/api/devices?${q}` });
    const first = await page('metadata.fleet=blue&top=2');
    expect(first.status).toBe(200);
    expect((first.body.items as { id: string }[]).map((d) => d.id)).toEqual(['list-1', 'list-2']);
    const second = await page(
      `metadata.fleet=blue&top=2&continuationToken=${encodeURIComponent(first.body.continuationToken as string)}`,
    );
    expect((second.body.items as { id: string }[]).map((d) => d.id)).toEqual(['list-3']);
    expect(second.body.continuationToken).toBeNull();
    const disabled = await page('status=disabled&metadata.fleet=blue');
    expect((disabled.body.items as { id: string }[]).map((d) => d.id)).toEqual(['list-2']);
    expect((await page('metadata.rank=3')).body.items).toHaveLength(1);
    expect((await page('query=SELECT')).status).toBe(422);
    expect((await page('top=5000')).status).toBe(422);
    expect((await page('metadata.a%22%5D=1')).status).toBe(422);
    expect((await page('metadata.fleet=blue&code=function-key')).status).toBe(200);
  });

  it('updates metadata with a JSON merge patch, honouring If-Match (412)', async () => {
    const created = await register({ id: 'api-3', metadata: { a: 1, b: { c: 2, d: 3 } } });
    const patch = (body: unknown, headers: Record<string, string> = {}) =>
      call('updateDevice', {
        method: 'PATCH',
        path: '/api/devices/api-3',
        params: { id: 'api-3' },
        body: JSON.stringify(body),
        headers,
      });
    const res = await patch({ a: null, b: { d: 4 }, e: true }, { 'if-match': created.headers.etag ?? '' });
    expect(res.status).toBe(200);
    expect(res.body.metadata).toEqual({ b: { c: 2, d: 4 }, e: true });
    expect((await patch({ f: 1 }, { 'if-match': created.headers.etag ?? '' })).status).toBe(412);
    expect((await patch({ f: 1 })).status).toBe(200);
    expect(
      (
        await call('updateDevice', {
          method: 'PATCH',
          path: '/api/devices/x',
          params: { id: 'api-nobody' },
          body: '{}',
        })
      ).status,
    ).toBe(404);
    expect(
      (
        await call('updateDevice', {
          method: 'PATCH',
          path: '/api/devices/api-3',
          params: { id: 'api-3' },
          body: '[1',
        })
      ).status,
    ).toBe(400);
  });

  it('deactivates (revoking access at once) and activates, merging metadata', async () => {
    const created = await register({ id: 'api-4' });
    const keys = created.body.keys as { primaryKey: string };
    const uri = 'testhub.azure-devices.net/devices/api-4';
    const token = createSasToken(uri, keys.primaryKey, Math.floor(Date.now() / 1000) + 600);
    expect(await identities.authenticate('api-4', token, 'testhub.azure-devices.net')).toBe('valid');
    const off = await post('deactivateDevice', 'api-4', 'deactivate', { metadata: { reason: 'stolen' } });
    expect(off.status).toBe(200);
    expect(off.body).toMatchObject({ status: 'disabled', metadata: { reason: 'stolen' } });
    expect(await identities.authenticate('api-4', token, 'testhub.azure-devices.net')).toBe('disabled');
    const on = await post('activateDevice', 'api-4', 'activate');
    expect(on.body).toMatchObject({ status: 'enabled', metadata: { reason: 'stolen' } });
    expect(await identities.authenticate('api-4', token, 'testhub.azure-devices.net')).toBe('valid');
    expect((await post('activateDevice', 'api-nobody', 'activate')).status).toBe(404);
    expect((await post('activateDevice', 'api-4', 'activate', { status: 'x' })).status).toBe(422);
  });

  it('resets credentials: new keys and connection string, old tokens refused', async () => {
    const created = await register({ id: 'api-5' });
    const old = created.body.keys as { primaryKey: string };
    const uri = 'testhub.azure-devices.net/devices/api-5';
    const token = createSasToken(uri, old.primaryKey, Math.floor(Date.now() / 1000) + 600);
    const res = await post('resetCredentials', 'api-5', 'reset-credentials');
    expect(res.status).toBe(200);
    const fresh = res.body.keys as { primaryKey: string };
    expect(fresh.primaryKey).not.toBe(old.primaryKey);
    expect(res.body.connectionString).toContain(`SharedAccessKey=${fresh.primaryKey}`);
    expect(await identities.authenticate('api-5', token, 'testhub.azure-devices.net')).toBe('bad-signature');
    expect(
      (
        await post('resetCredentials', 'api-5', 'reset-credentials', {
          keys: { primaryKey: 'x', secondaryKey: 'y' },
        })
      ).status,
    ).toBe(422);
    expect((await post('resetCredentials', 'api-nobody', 'reset-credentials')).status).toBe(404);
  });

  it('unregisters: 204, identity and catalog gone, last-known state purged on request; 404 after', async () => {
    await register({ id: 'api-6' });
    const ingest = makeIngestTelemetry({ ...adapters, options: config.ingest });
    const { bodies, triggerMetadata } = iotHubBatch([
      { deviceId: 'api-6', sequenceNumber: 1, body: { t: 1 } },
    ]);
    await ingest(bodies, new InvocationContext({ triggerMetadata }));
    expect(await adapters.stateStore.get('api-6')).toBeDefined();
    const del = (q = '') =>
      call('unregisterDevice', { method: 'DELETE', path: `/api/devices/api-6${q}`, params: { id: 'api-6' } });
    expect((await del('?purgeState=maybe')).status).toBe(422);
    expect((await del('?purgeState=true')).status).toBe(204);
    expect(await identities.get('api-6')).toBeUndefined();
    expect((await get('api-6')).status).toBe(404);
    expect(await adapters.stateStore.get('api-6')).toBeUndefined();
    expect((await del()).status).toBe(404);
  });

  it('reads and patches the twin, checking IoT Hub limits before any call and honouring If-Match', async () => {
    await register({ id: 'api-7' });
    const twin = (method: string, body?: unknown, headers: Record<string, string> = {}, deviceId = 'api-7') =>
      call(method === 'GET' ? 'getDeviceTwin' : 'updateDeviceTwin', {
        method,
        path: `/api/devices/${deviceId}/twin`,
        params: { id: deviceId },
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    const empty = await twin('GET');
    expect(empty.status).toBe(200);
    expect(empty.body).toEqual({ deviceId: 'api-7', desired: {}, reported: {} });
    const patched = await twin('PATCH', { desired: { interval: 30, led: { on: true } } });
    expect(patched.status).toBe(200);
    expect(patched.body.desired).toEqual({ interval: 30, led: { on: true } });
    const etag = patched.headers.etag ?? '';
    expect((await twin('PATCH', { desired: { interval: 60 } }, { 'if-match': etag })).status).toBe(200);
    expect((await twin('PATCH', { desired: { interval: 90 } }, { 'if-match': etag })).status).toBe(412);
    const tooBig = await twin('PATCH', {
      desired: {
        blob: 'x'.repeat(5000),
        'bad.key': 1,
        deep: { a: { b: { c: { d: { e: { f: { g: { h: { i: { j: 1 } } } } } } } } } },
      },
    });
    expect(tooBig.status).toBe(422);
    expect((tooBig.body.errors as { path: string }[]).map((e) => e.path)).toEqual(
      expect.arrayContaining(['desired.blob', 'desired.bad.key']),
    );
    expect((await twin('GET')).body.desired).toEqual({ interval: 60, led: { on: true } });
    expect((await twin('PATCH', { desired: { a: 1 }, tags: {} })).status).toBe(422);
    expect((await twin('GET', undefined, {}, 'api-nobody')).status).toBe(404);
  });

  it('re-registers a ghost device (identity without catalog entry): 201 with new keys, the old ones refused (issue 13)', async () => {
    const first = await register({ id: 'ghost-1' });
    expect(first.status).toBe(201);
    const oldKey = (first.body.keys as { primaryKey: string }).primaryKey;
    // What a lost local catalog (or a hand-deleted document) leaves behind.
    expect(await adapters.catalog.delete('ghost-1')).toBe(true);
    expect((await get('ghost-1')).status).toBe(404);
    const again = await register({ id: 'ghost-1', metadata: { site: 'lab' } });
    expect(again.status).toBe(201);
    expect(again.body).toMatchObject({ id: 'ghost-1', status: 'enabled', metadata: { site: 'lab' } });
    const newKey = (again.body.keys as { primaryKey: string }).primaryKey;
    expect(newKey).not.toBe(oldKey);
    expect((await identities.get('ghost-1'))?.keys.primaryKey).toBe(newKey);
    expect((await get('ghost-1')).status).toBe(200);
    // Once adopted, the id is taken again.
    expect((await register({ id: 'ghost-1' })).status).toBe(409);
  });

  it('never lets key material reach the device catalog documents, the logs or read responses', async () => {
    expect(issuedKeys.size).toBeGreaterThan(10);
    const cosmos = new CosmosClient({
      endpoint: config.cosmos.endpoint,
      key: config.cosmos.key ?? '',
      agent: new Agent({ rejectUnauthorized: false }),
      connectionPolicy: { enableEndpointDiscovery: false },
    });
    const { resources } = await cosmos
      .database(config.cosmos.databaseName)
      .container(config.provisioning.devicesContainerName)
      .items.readAll()
      .fetchAll();
    expect(resources.length).toBeGreaterThan(5);
    const reads = await call('listDevices', { method: 'GET', path: '/api/devices?top=1000' });
    const haystacks = [JSON.stringify(resources), logs.join('\n'), JSON.stringify(reads.body)];
    for (const key of issuedKeys) for (const text of haystacks) expect(text).not.toContain(key);
    expect(JSON.stringify(resources)).not.toMatch(/primaryKey|secondaryKey|SharedAccessKey/);
  });
});
