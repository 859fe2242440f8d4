import { describe, expect, it } from 'vitest';
import { generateKeys } from '../../../src/provisioning/keys.js';
import type { DeviceIdentity, IdentityStore } from '../../../src/provisioning/ports.js';
import { ProvisioningService, type OrphanLog } from '../../../src/provisioning/provisioning-service.js';
import type {
  DeviceRecord,
  DeviceRegistry,
  VersionedDeviceRecord,
} from '../../../src/provisioning/registry.js';
import { ProvisioningInconsistencyError } from '../../../src/shared/errors.js';
import type { TwinStore } from '../../../src/provisioning/twin.js';
import type { DeviceStateStore } from '../../../src/telemetry/ports.js';

// The compensation paths need failures the local emulators cannot be made to produce on demand (a registry
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

const failingRegistry = {
  create: (_record: DeviceRecord): Promise<VersionedDeviceRecord> =>
    Promise.reject(new Error('registry unreachable')),
} as unknown as DeviceRegistry;

function service(identities: MemoryIdentities, orphans: OrphanLog) {
  return new ProvisioningService({
    identities: identities as unknown as IdentityStore,
    twins: {} as TwinStore,
    registry: failingRegistry,
    stateStore: {} as DeviceStateStore,
    orphans,
    hostName: 'h',
    maxMetadataBytes: 1000,
  });
}

describe('ProvisioningService.register consistency (ADR 0005)', () => {
  it('deletes the identity again when the registry write fails, and reports the registry error', async () => {
    const identities = new MemoryIdentities();
    const recorded: unknown[] = [];
    await expect(
      service(identities, { record: (o) => Promise.resolve(void recorded.push(o)) }).register({ id: 'd1' }),
    ).rejects.toThrow('registry unreachable');
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
