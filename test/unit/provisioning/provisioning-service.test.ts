import { describe, expect, it } from 'vitest';
import { generateKeys, type SymmetricKeys } from '../../../src/provisioning/keys.js';
import type { DeviceIdentity, IdentityStore } from '../../../src/provisioning/ports.js';
import { ProvisioningService, type OrphanLog } from '../../../src/provisioning/provisioning-service.js';
import type {
  DeviceRecord,
  DeviceCatalog,
  VersionedDeviceRecord,
} from '../../../src/provisioning/catalog.js';
import {
  DeviceAlreadyExistsError,
  DeviceNotFoundError,
  ProvisioningInconsistencyError,
} from '../../../src/shared/errors.js';
import type { TwinStore } from '../../../src/provisioning/twin.js';
import type { DeviceStateStore } from '../../../src/telemetry/ports.js';

// The compensation paths need failures the local emulators cannot be made to produce on demand (a catalog
// write failing right after an identity write succeeded), so these use in-memory fakes typed as the ports.

class MemoryIdentities implements Pick<IdentityStore, 'create' | 'delete'> {
  readonly ids = new Map<string, DeviceIdentity>();
  failDelete = false;
  create(deviceId: string) {
    const identity: DeviceIdentity = { deviceId, status: 'enabled', keys: generateKeys() };
    this.ids.set(deviceId, identity);
    return Promise.resolve(identity);
  }
  delete(deviceId: string) {
    if (this.failDelete) return Promise.reject(new Error('identity store unreachable'));
    return Promise.resolve(this.ids.delete(deviceId));
  }
}

const failingCatalog = {
  create: (_record: DeviceRecord): Promise<VersionedDeviceRecord> =>
    Promise.reject(new Error('catalog unreachable')),
} as unknown as DeviceCatalog;

function service(identities: MemoryIdentities, orphans: OrphanLog) {
  return new ProvisioningService({
    identities: identities as unknown as IdentityStore,
    twins: {} as TwinStore,
    catalog: failingCatalog,
    stateStore: {} as DeviceStateStore,
    orphans,
    hostName: 'h',
    maxMetadataBytes: 1000,
  });
}

describe('ProvisioningService.register consistency (ADR 0005)', () => {
  it('deletes the identity again when the device catalog write fails, and reports the device catalog error', async () => {
    const identities = new MemoryIdentities();
    const recorded: unknown[] = [];
    await expect(
      service(identities, { record: (o) => Promise.resolve(void recorded.push(o)) }).register({ id: 'd1' }),
    ).rejects.toThrow('catalog unreachable');
    expect(identities.ids.has('d1')).toBe(false);
    expect(recorded).toEqual([]);
  });

  it('records an orphan when the compensation fails too, and says so', async () => {
    const identities = new MemoryIdentities();
    identities.failDelete = true;
    const recorded: { deviceId: string }[] = [];
    const error = await service(identities, { record: (o) => Promise.resolve(void recorded.push(o)) })
      .register({ id: 'd2' })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProvisioningInconsistencyError);
    expect(error).toMatchObject({ deviceId: 'd2', recorded: true });
    expect(recorded.map((o) => o.deviceId)).toEqual(['d2']);
  });

  it('says when even the orphan could not be recorded', async () => {
    const identities = new MemoryIdentities();
    identities.failDelete = true;
    const error = await service(identities, { record: () => Promise.reject(new Error('down')) })
      .register({ id: 'd3' })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ deviceId: 'd3', recorded: false });
    expect((error as Error).message).toContain('reconcile by hand');
  });
});

describe('ProvisioningService.register adopts an identity without a catalog entry (issue 13, item 3)', () => {
  /** An identity store and a catalog in memory, as far as register needs them. */
  function stores() {
    const identities = new Map<string, DeviceIdentity>();
    const records = new Map<string, VersionedDeviceRecord>();
    const identityStore = {
      create: (deviceId: string) => {
        if (identities.has(deviceId)) return Promise.reject(new DeviceAlreadyExistsError(deviceId));
        const identity: DeviceIdentity = { deviceId, status: 'enabled', keys: generateKeys() };
        identities.set(deviceId, identity);
        return Promise.resolve(identity);
      },
      regenerateKeys: (deviceId: string, keys?: SymmetricKeys) => {
        const current = identities.get(deviceId);
        if (!current) return Promise.reject(new DeviceNotFoundError(deviceId));
        const next = { ...current, keys: keys ?? generateKeys() };
        identities.set(deviceId, next);
        return Promise.resolve(next);
      },
      setStatus: (deviceId: string, status: 'enabled' | 'disabled') => {
        const current = identities.get(deviceId);
        if (!current) return Promise.reject(new DeviceNotFoundError(deviceId));
        identities.set(deviceId, { ...current, status });
        return Promise.resolve({ ...current, status });
      },
      delete: (deviceId: string) => Promise.resolve(identities.delete(deviceId)),
    } as unknown as IdentityStore;
    const catalog = {
      create: (record: DeviceRecord) => {
        if (records.has(record.id)) return Promise.reject(new DeviceAlreadyExistsError(record.id));
        const stored = { ...record, etag: '"1"' };
        records.set(record.id, stored);
        return Promise.resolve(stored);
      },
      get: (id: string) => Promise.resolve(records.get(id)),
      delete: (id: string) => Promise.resolve(records.delete(id)),
    } as unknown as DeviceCatalog;
    const provisioning = new ProvisioningService({
      identities: identityStore,
      twins: {} as TwinStore,
      catalog,
      stateStore: {} as DeviceStateStore,
      orphans: { record: () => Promise.resolve() },
      hostName: 'h',
      maxMetadataBytes: 1000,
    });
    return { identities, records, provisioning };
  }

  it('re-registers a ghost device: catalog entry written, keys re-issued, identity enabled again', async () => {
    const { identities, records, provisioning } = stores();
    const ghost: DeviceIdentity = { deviceId: 'ghost', status: 'disabled', keys: generateKeys() };
    identities.set('ghost', ghost);
    const credentials = await provisioning.register({ id: 'ghost', metadata: { site: 'lab' } });
    expect(records.get('ghost')?.metadata).toEqual({ site: 'lab' });
    expect(credentials.keys.primaryKey).not.toBe(ghost.keys.primaryKey);
    expect(identities.get('ghost')).toMatchObject({ status: 'enabled', keys: credentials.keys });
    expect(credentials.connectionString).toContain(credentials.keys.primaryKey);
  });

  it('keeps the keys given in the request when adopting', async () => {
    const { identities, provisioning } = stores();
    identities.set('ghost', { deviceId: 'ghost', status: 'enabled', keys: generateKeys() });
    const keys = generateKeys();
    expect((await provisioning.register({ id: 'ghost', keys })).keys).toEqual(keys);
    expect(identities.get('ghost')?.keys).toEqual(keys);
  });

  it('still answers 409 when a catalog entry uses the id, and leaves the identity and its keys alone', async () => {
    const { identities, provisioning } = stores();
    const first = await provisioning.register({ id: 'taken' });
    await expect(provisioning.register({ id: 'taken' })).rejects.toBeInstanceOf(DeviceAlreadyExistsError);
    expect(identities.get('taken')?.keys).toEqual(first.keys);
  });
});
