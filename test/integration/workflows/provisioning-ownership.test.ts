/**
 * Who owns a catalog entry (issue 12, item 4): a provisioning workflow recognises only its own earlier write
 * (the creation token on the entry), never adopts or deletes an entry someone else left, and an unregister that
 * stops half-way leaves nothing a later registration mistakes for its own. Run through durable-functions'
 * replay engine on Azurite and the local Cosmos DB server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import { createAdapters, type Adapters } from '../../../src/infra/adapters.js';
import type { ProvisionDeviceInput } from '../../../src/provisioning/provision-device-workflow.js';
import { ProvisioningService } from '../../../src/provisioning/provisioning-service.js';
import type { DeviceRecord } from '../../../src/provisioning/catalog.js';
import { ThrottledError } from '../../../src/shared/errors.js';
import { EventType, type DurableEngine } from '../../../tools/local-runtime/durable-engine.js';
import { startHookServer } from '../../fixtures/hook-server.js';
import { engineFromRegistrations, nonDeterministicEpisodes, orchestratorOf } from '../../support/durable.js';
import { loadEntryPoint, type Registration } from '../../support/entry-point.js';
import { testSettings } from '../../support/local-env.js';

const hooks = await startHookServer();
const settings = testSettings({
  IdentityTableName: `ownidentities${Date.now().toString(36)}`,
  Provisioning__Hooks: hooks.url('/sim'),
  Provisioning__RegistryOpsPerMinute: '6000',
});
let registrations: Registration[];
let adapters: Adapters;
let engine: DurableEngine;

beforeAll(async () => {
  registrations = await loadEntryPoint(settings);
  adapters = createAdapters(loadConfig(settings));
  engine = engineFromRegistrations(registrations);
});
afterAll(() => hooks.close());

const at = '2026-01-01T00:00:00.000Z';
/** An entry someone else wrote: another workflow's token, or none (written by a version before tokens). */
const foreignEntry = (id: string, creationToken?: string): DeviceRecord => ({
  id,
  status: 'enabled',
  metadata: { owner: 'previous device', firmware: 'old' },
  createdAt: at,
  updatedAt: at,
  ...(creationToken === undefined ? {} : { creationToken }),
});

const provision = async (instanceId: string, deviceId: string, metadata: Record<string, unknown> = {}) => {
  engine.start('provisionDevice', instanceId, {
    deviceId,
    metadata,
    hooks: [],
    requestedAt: at,
  } satisfies ProvisionDeviceInput);
  return engine.whenDone(instanceId);
};

describe('provisionDevice and a catalog entry it did not write', () => {
  it("neither adopts nor deletes another writer's stale entry: the device fails for good, the entry stays", async () => {
    await adapters.catalog.create(foreignEntry('own-stale-1', 'provision-someone-else'));
    const done = await provision('own-stale', 'own-stale-1', { owner: 'new device' });
    expect(done.runtimeStatus).toBe('Failed');
    expect(String(done.output)).toMatch(/failed at step 'write-registry': .*stale catalog entry/);
    // Failed once, not five times: a stale entry does not go away by retrying.
    const catalogWrites = engine
      .executions('own-stale')
      .flatMap((e) => e.history)
      .filter((e) => e.Name === 'provisionDeviceWriteRegistry' && e.EventType === EventType.TaskScheduled);
    expect(catalogWrites).toHaveLength(1);
    // The entry is untouched (old metadata, not deleted by compensation); our own identity is removed.
    expect((await adapters.catalog.get('own-stale-1'))?.metadata).toEqual({
      owner: 'previous device',
      firmware: 'old',
    });
    expect(await adapters.identities.get('own-stale-1')).toBeUndefined();
    expect(done.customStatus).toMatchObject({ compensated: ['identity', 'outcome'] });
  });

  it('replaces an entry left by an older version (no token, no identity) with a fresh one of its own', async () => {
    await adapters.catalog.create(foreignEntry('own-legacy-1'));
    const done = await provision('own-legacy', 'own-legacy-1', { owner: 'new device' });
    expect(done.runtimeStatus).toBe('Completed');
    const entry = await adapters.catalog.get('own-legacy-1');
    // Nothing inherited from the old entry: metadata, createdAt and the token are the new device's.
    expect(entry).toMatchObject({ metadata: { owner: 'new device' }, status: 'enabled' });
    expect(entry?.createdAt).not.toBe(at);
    expect(entry?.creationToken).toBe('own-legacy');
    expect(
      await nonDeterministicEpisodes(engine, 'own-legacy', orchestratorOf(registrations, 'provisionDevice')),
    ).toEqual([]);
  });

  it('recognises its own earlier write (same token) when the device catalog activity runs twice', async () => {
    const activity = registrations.find((r) => r.metadata.name === 'provisionDeviceWriteRegistry');
    const input = { deviceId: 'own-twice-1', metadata: { a: 1 }, at, workflowId: 'own-twice' };
    await activity?.callback(input, {});
    await activity?.callback(input, {});
    expect((await adapters.catalog.get('own-twice-1'))?.creationToken).toBe('own-twice');
  });

  it('compensation leaves alone an entry that another writer replaced meanwhile', async () => {
    const activity = registrations.find((r) => r.metadata.name === 'provisionDeviceDeleteRegistry');
    await adapters.catalog.create(foreignEntry('own-comp-1', 'provision-other'));
    await activity?.callback({ deviceId: 'own-comp-1', workflowId: 'own-comp' }, {});
    expect(await adapters.catalog.get('own-comp-1')).toBeDefined();
  });
});

describe('bulkProvision and a stale catalog entry', () => {
  it('fails that device (entry kept, our identity removed) and creates the others', async () => {
    await adapters.catalog.create(foreignEntry('own-bulk-1', 'bulk-someone-else'));
    const specs = ['own-bulk-0', 'own-bulk-1', 'own-bulk-2'].map((id) => ({ id, metadata: { run: 'new' } }));
    await adapters.work.write('requests/own-bulk/0.json', JSON.stringify(specs));
    engine.start('bulkProvision', 'own-bulk', { total: 3, chunks: 1, opsPerMinute: 6000, requestedAt: at });
    const done = await engine.whenDone('own-bulk');
    expect(done.output).toMatchObject({ total: 3, created: 2, failed: 1 });
    const lines = ((await adapters.results.read('own-bulk.jsonl')) ?? '')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.find((l) => l.deviceId === 'own-bulk-1')).toMatchObject({
      outcome: 'failed',
      error: expect.stringMatching(/stale catalog entry/) as unknown,
    });
    expect((await adapters.catalog.get('own-bulk-1'))?.metadata).toEqual(foreignEntry('x').metadata);
    expect(await adapters.identities.get('own-bulk-1')).toBeUndefined();
    expect((await adapters.catalog.get('own-bulk-2'))?.creationToken).toBe('own-bulk');
  });
});

describe('unregister and a later registration', () => {
  /** The service over the real adapters, with a catalog whose next delete fails as a throttled one does. */
  const serviceWithFlakyDelete = () => {
    let failNext = true;
    const catalog = Object.create(adapters.catalog) as typeof adapters.catalog;
    catalog.delete = (id: string) => {
      if (failNext) {
        failNext = false;
        return Promise.reject(new ThrottledError('throttled', 1));
      }
      return adapters.catalog.delete(id);
    };
    return new ProvisioningService({
      identities: adapters.identities,
      twins: adapters.twins,
      catalog,
      stateStore: adapters.stateStore,
      orphans: adapters.orphans,
      hostName: 'h',
      maxMetadataBytes: 8192,
    });
  };

  it('an unregister that stops half-way leaves no catalog entry without its identity', async () => {
    const service = serviceWithFlakyDelete();
    await service.register({ id: 'own-unreg-1', metadata: { owner: 'first' } });
    await expect(service.unregister('own-unreg-1', false)).rejects.toBeInstanceOf(ThrottledError);
    // Either the device is whole (retry the DELETE) or its entry is gone: never an entry without identity.
    const entry = await adapters.catalog.get('own-unreg-1');
    const identity = await adapters.identities.get('own-unreg-1');
    expect(entry === undefined || identity !== undefined).toBe(true);
    // A new provisioning of the same id does not inherit the first device's entry.
    await service.unregister('own-unreg-1', false);
    const done = await provision('own-unreg', 'own-unreg-1', { owner: 'second' });
    expect(done.runtimeStatus).toBe('Completed');
    expect((await adapters.catalog.get('own-unreg-1'))?.metadata).toEqual({ owner: 'second' });
  });

  it('a register racing an unregister never hands its entry to the next registration', async () => {
    // Register B creates its identity; unregister A runs in full (no entry yet, B's identity deleted); then B
    // writes its entry: an entry with B's token and no identity, which the next workflow must not adopt.
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const catalog = Object.create(adapters.catalog) as typeof adapters.catalog;
    catalog.create = async (record) => {
      await gate;
      return adapters.catalog.create(record);
    };
    const deps = {
      identities: adapters.identities,
      twins: adapters.twins,
      stateStore: adapters.stateStore,
      orphans: adapters.orphans,
      hostName: 'h',
      maxMetadataBytes: 8192,
    };
    const b = new ProvisioningService({ ...deps, catalog }).register({
      id: 'own-race-1',
      metadata: { b: 1 },
    });
    while (!(await adapters.identities.get('own-race-1'))) await new Promise((r) => setTimeout(r, 10));
    await new ProvisioningService({ ...deps, catalog: adapters.catalog }).unregister('own-race-1', false);
    release();
    await b;
    expect(await adapters.identities.get('own-race-1')).toBeUndefined();
    const done = await provision('own-race', 'own-race-1', { c: 1 });
    expect(done.runtimeStatus).toBe('Failed');
    expect(String(done.output)).toMatch(/stale catalog entry/);
    expect((await adapters.catalog.get('own-race-1'))?.metadata).toEqual({ b: 1 });
  });
});
