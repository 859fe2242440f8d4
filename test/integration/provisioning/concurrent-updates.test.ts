/**
 * Optimistic concurrency over the HTTP handlers, on Azurite + the local Cosmos DB server (issue 14): a client
 * that sent no If-Match never gets 412 because another request won a race (the write is re-read and re-applied),
 * no field of a concurrent merge is lost, and 412 answers only a client whose own If-Match is stale.
 */
import { describe, expect, it } from 'vitest';
import { createAdapters } from '../../../src/infra/adapters.js';
import { makeProvisioningHandlers } from '../../../src/provisioning/http-handlers.js';
import type { IdentityStatus, IdentityStore } from '../../../src/provisioning/ports.js';
import { ProvisioningService } from '../../../src/provisioning/provisioning-service.js';
import { PreconditionFailedError } from '../../../src/shared/errors.js';
import { testConfig } from '../../support/local-env.js';
import { callHandler } from '../../support/handler-call.js';

const config = testConfig({ IotHubHostName: 'testhub.azure-devices.net' });
const adapters = createAdapters(config);
const handlers = makeProvisioningHandlers(
  new ProvisioningService({
    ...adapters,
    hostName: config.provisioning.hostName,
    maxMetadataBytes: config.provisioning.maxMetadataBytes,
  }),
);

/** Concurrent requests per burst (the reproduction: 20 PATCHes at once). */
const BURST = 20;

const call = (
  name: keyof typeof handlers,
  init: { method: string; id?: string; path?: string; body?: unknown; headers?: Record<string, string> },
) =>
  callHandler(name, handlers[name], {
    method: init.method,
    path: init.path ?? `/api/devices/${encodeURIComponent(init.id ?? '')}`,
    ...(init.id === undefined ? {} : { params: { id: init.id } }),
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
    ...(init.headers ? { headers: init.headers } : {}),
  });

const register = async (id: string) => {
  const res = await call('registerDevice', { method: 'POST', path: '/api/devices', body: { id } });
  expect(res.status).toBe(201);
};
const patchDevice = (id: string, patch: unknown, headers?: Record<string, string>) =>
  call('updateDevice', { method: 'PATCH', id, body: patch, ...(headers ? { headers } : {}) });
const patchTwin = (id: string, desired: Record<string, unknown>, headers?: Record<string, string>) =>
  call('updateDeviceTwin', {
    method: 'PATCH',
    id,
    path: `/api/devices/${encodeURIComponent(id)}/twin`,
    body: { desired },
    ...(headers ? { headers } : {}),
  });
const fields = (n: number) => Array.from({ length: n }, (_, i) => `field${String(i).padStart(2, '0')}`);

describe('concurrent updates without If-Match', () => {
  it(`${BURST} concurrent metadata PATCHes all succeed (200) and the entry keeps every field`, async () => {
    await register('burst-meta');
    const answers = await Promise.all(fields(BURST).map((f) => patchDevice('burst-meta', { [f]: f })));
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));
    const stored = await call('getDevice', { method: 'GET', id: 'burst-meta' });
    const metadata = stored.body.metadata as Record<string, unknown>;
    expect(Object.keys(metadata).sort()).toEqual(fields(BURST));
  });

  it(`${BURST} concurrent twin PATCHes all succeed (200) and the desired properties keep every key`, async () => {
    await register('burst-twin');
    const answers = await Promise.all(fields(BURST).map((f) => patchTwin('burst-twin', { [f]: f })));
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));
    const twin = await call('getDeviceTwin', {
      method: 'GET',
      id: 'burst-twin',
      path: '/api/devices/burst-twin/twin',
    });
    const desired = twin.body.desired as Record<string, unknown>;
    for (const f of fields(BURST)) expect(desired[f]).toBe(f);
  });
});

describe('412 only for a client whose If-Match is stale', () => {
  it('device PATCH: the current ETag succeeds, a stale one is 412, no If-Match succeeds', async () => {
    await register('etag-meta');
    const first = await call('getDevice', { method: 'GET', id: 'etag-meta' });
    const etag = first.headers.etag ?? '';
    const ok = await patchDevice('etag-meta', { a: 1 }, { 'if-match': etag });
    expect(ok.status).toBe(200);
    const stale = await patchDevice('etag-meta', { b: 2 }, { 'if-match': etag });
    expect(stale.status).toBe(412);
    expect(stale.body.type).toBe('urn:problem-type:precondition-failed');
    expect((await patchDevice('etag-meta', { c: 3 })).status).toBe(200);
  });

  it('twin PATCH: the current ETag succeeds, a stale one is 412, no If-Match succeeds', async () => {
    await register('etag-twin');
    const first = await patchTwin('etag-twin', { a: 1 });
    expect(first.status).toBe(200);
    const etag = first.headers.etag ?? '';
    expect((await patchTwin('etag-twin', { b: 2 }, { 'if-match': etag })).status).toBe(200);
    const stale = await patchTwin('etag-twin', { c: 3 }, { 'if-match': etag });
    expect(stale.status).toBe(412);
    expect((await patchTwin('etag-twin', { d: 4 })).status).toBe(200);
  });

  it('concurrent PATCHes with the same If-Match: one wins, every other is 412 (none is re-applied)', async () => {
    await register('etag-race');
    const { headers } = await call('getDevice', { method: 'GET', id: 'etag-race' });
    const answers = await Promise.all(
      fields(5).map((f) => patchDevice('etag-race', { [f]: f }, { 'if-match': headers.etag ?? '' })),
    );
    const statuses = answers.map((a) => a.status).sort();
    expect(statuses).toEqual([200, 412, 412, 412, 412]);
  });
});

describe('a deactivate with If-Match that loses its catalog write after the identity changed', () => {
  it('answers 412 and puts the identity status back; the concurrent update is kept', async () => {
    const id = 'late-race-1';
    const real = adapters.identities;
    let concurrent: (() => Promise<void>) | undefined;
    // The real identity store, with another writer's catalog update landing right after our identity write.
    const identities: IdentityStore = Object.assign(Object.create(real) as IdentityStore, {
      setStatus: async (deviceId: string, status: IdentityStatus) => {
        const written = await real.setStatus(deviceId, status);
        const interleave = concurrent;
        concurrent = undefined;
        await interleave?.();
        return written;
      },
    });
    const service = new ProvisioningService({
      ...adapters,
      identities,
      hostName: config.provisioning.hostName,
      maxMetadataBytes: config.provisioning.maxMetadataBytes,
    });
    await register(id);
    const before = await service.get(id);
    concurrent = async () => {
      const current = await adapters.catalog.get(id);
      if (current) await adapters.catalog.replace({ ...current, metadata: { by: 'other' } }, current.etag);
    };

    await expect(service.setStatus(id, 'disabled', undefined, before.etag)).rejects.toBeInstanceOf(
      PreconditionFailedError,
    );
    expect((await real.get(id))?.status).toBe('enabled');
    expect(await adapters.catalog.get(id)).toMatchObject({ status: 'enabled', metadata: { by: 'other' } });
  });
});
