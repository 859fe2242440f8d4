import { CosmosClient } from '@azure/cosmos';
import { Agent } from 'node:https';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createCosmosClient, lazyContainer } from '../../../src/infra/cosmos/cosmos-client.js';
import { buildQuery, CosmosDeviceCatalog } from '../../../src/infra/cosmos/cosmos-device-catalog.js';
import type { DeviceRecord } from '../../../src/provisioning/catalog.js';
import {
  DeviceAlreadyExistsError,
  DeviceNotFoundError,
  ConcurrentUpdateError,
  ValidationError,
} from '../../../src/shared/errors.js';
import { startCosmosQueryGateway, type CosmosQueryGateway } from '../../fixtures/cosmos-query-gateway.js';
import { testConfig } from '../../support/local-env.js';

const config = testConfig();
const catalog = new CosmosDeviceCatalog(
  lazyContainer(createCosmosClient(config.cosmos), config.cosmos.databaseName, 'devices', {
    create: true,
    partitionKeyPath: '/id',
  }),
);

const record = (
  id: string,
  metadata: Record<string, unknown> = {},
  status: DeviceRecord['status'] = 'enabled',
) => ({
  id,
  status,
  metadata,
  createdAt: '2026-11-23T10:00:00.000Z',
  updatedAt: '2026-11-23T10:00:00.000Z',
});

describe('CosmosDeviceCatalog on the local Cosmos DB server', () => {
  it('creates, reads back with an ETag, and refuses a duplicate', async () => {
    const created = await catalog.create(record('reg#1?', { model: 'TH-1' }));
    expect(created).toMatchObject({ id: 'reg#1?', status: 'enabled', metadata: { model: 'TH-1' } });
    expect(created.etag).not.toBe('');
    expect(await catalog.get('reg#1?')).toEqual(created);
    await expect(catalog.create(record('reg#1?'))).rejects.toBeInstanceOf(DeviceAlreadyExistsError);
    expect(await catalog.get('nobody')).toBeUndefined();
  });

  it('replaces only under a matching ETag when one is given', async () => {
    const created = await catalog.create(record('reg-2', { floor: 1 }));
    const updated = await catalog.replace({ ...created, metadata: { floor: 2 } }, created.etag);
    expect(updated.metadata).toEqual({ floor: 2 });
    expect(updated.etag).not.toBe(created.etag);
    // The port cannot tell whose ETag it was given: a stale one is a lost race (the service makes it a 412 when
    // the ETag was the client's If-Match).
    await expect(
      catalog.replace({ ...created, metadata: { floor: 3 } }, created.etag),
    ).rejects.toBeInstanceOf(ConcurrentUpdateError);
    expect((await catalog.replace({ ...created, metadata: { floor: 4 } })).metadata).toEqual({ floor: 4 });
    await expect(catalog.replace(record('missing'))).rejects.toBeInstanceOf(DeviceNotFoundError);
  });

  it('deletes, and says whether there was anything to delete', async () => {
    await catalog.create(record('reg-3'));
    expect(await catalog.delete('reg-3')).toBe(true);
    expect(await catalog.delete('reg-3')).toBe(false);
  });

  it('queries by status and metadata, page by page', async () => {
    for (let i = 0; i < 7; i++) {
      await catalog.create(
        record(`q-${i}`, { site: i < 5 ? 'north' : 'south', floor: i % 2 }, i === 0 ? 'disabled' : 'enabled'),
      );
    }
    const ids: string[] = [];
    let token: string | undefined;
    do {
      const page = await catalog.query({
        metadata: { site: 'north' },
        top: 2,
        ...(token ? { continuationToken: token } : {}),
      });
      expect(page.items.length).toBeLessThanOrEqual(2);
      ids.push(...page.items.map((r) => r.id));
      token = page.continuationToken;
    } while (token);
    expect(ids).toEqual(['q-0', 'q-1', 'q-2', 'q-3', 'q-4']);

    const enabledOddNorth = await catalog.query({
      status: 'enabled',
      metadata: { site: 'north', floor: 1 },
      top: 100,
    });
    expect(enabledOddNorth.items.map((r) => r.id)).toEqual(['q-1', 'q-3']);
    const injected = await catalog.query({ metadata: { site: `north" OR 1=1 --` }, top: 100 });
    expect(injected.items).toEqual([]);
  });

  it('builds SQL only from identifier field names, with every value a parameter', () => {
    expect(buildQuery({ status: 'enabled', metadata: { site: 'x' }, top: 5 })).toEqual({
      text: 'SELECT * FROM c WHERE c.status = @status AND c.metadata["site"] = @m0 ORDER BY c.id',
      parameters: [
        { name: '@status', value: 'enabled' },
        { name: '@m0', value: 'x' },
      ],
    });
    expect(() => buildQuery({ metadata: { 'a"] OR 1=1 --': 'x' }, top: 5 })).toThrow(ValidationError);
  });
});

describe('CosmosDeviceCatalog continuation tokens behind an Azure-like gateway', () => {
  // Against Azure, a cross-partition ORDER BY runs the SDK's own pipeline, which parses the token itself and
  // throws plain Errors without an HTTP status ("Failed to parse continuation token", "Unable to resume ORDER
  // BY query…"): those are the caller's bad token, 400, not a 500 (review finding 7). Well-formed JSON the SDK
  // does not recognise as one of its tokens gives an empty last page instead (no 500 either).
  let gateway: CosmosQueryGateway;
  let behindGateway: CosmosDeviceCatalog;
  beforeAll(async () => {
    gateway = await startCosmosQueryGateway(inject('localServices').cosmosEndpoint);
    const settings = testConfig({ CosmosDb__accountEndpoint: gateway.endpoint });
    behindGateway = new CosmosDeviceCatalog(
      lazyContainer(createCosmosClient(settings.cosmos), settings.cosmos.databaseName, 'devices', {
        create: true,
        partitionKeyPath: '/id',
      }),
    );
  });
  afterAll(async () => {
    await gateway.close();
  });

  it('pages through every device, as the SDK pipeline only hands out tokens with query control on', async () => {
    for (let i = 0; i < 5; i++) await behindGateway.create(record(`gw-${i}`));
    const ids: string[] = [];
    let token: string | undefined;
    for (let pages = 0; pages < 10; pages++) {
      const page = await behindGateway.query({ top: 2, ...(token ? { continuationToken: token } : {}) });
      ids.push(...page.items.map((r) => r.id));
      token = page.continuationToken;
      if (!token) break;
    }
    expect(ids).toEqual(['gw-0', 'gw-1', 'gw-2', 'gw-3', 'gw-4']);
    expect(gateway.plansServed).toBeGreaterThan(0);
  });

  it.each([
    'abc',
    'null',
    '{"rid":"x","rangeMappings":[{"queryRange":{"min":"","max":"FF"}}],"orderByItems":[]}',
  ])('refuses the token %s with ValidationError', async (token) => {
    await expect(behindGateway.query({ top: 2, continuationToken: token })).rejects.toBeInstanceOf(
      ValidationError,
    );
    expect(gateway.plansServed).toBeGreaterThan(0);
  });
});

describe('CosmosDeviceCatalog when the failure is not the token', () => {
  it('passes on a credential failure with a continuation token instead of calling the token invalid (400)', async () => {
    const client = new CosmosClient({
      endpoint: config.cosmos.endpoint,
      // A managed identity that cannot get a token (no identity on the host): an Error with no code or status.
      aadCredentials: {
        getToken: () => Promise.reject(new Error('ManagedIdentityCredential: no identity endpoint')),
      },
      agent: new Agent({ rejectUnauthorized: false }),
      connectionPolicy: { enableEndpointDiscovery: false },
    });
    const catalog = new CosmosDeviceCatalog(
      lazyContainer(client, config.cosmos.databaseName, 'devices', {
        create: false,
        partitionKeyPath: '/id',
      }),
    );
    const failure = await catalog
      .query({ top: 2, continuationToken: '{"token":"x","range":{"min":"","max":"FF"}}' })
      .catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(Error);
    expect(failure).not.toBeInstanceOf(ValidationError);
  });
});
