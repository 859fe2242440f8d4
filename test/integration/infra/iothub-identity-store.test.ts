// azure-iothub is CommonJS without named exports that Node's ESM loader can see: take them from the default.
import iothub from 'azure-iothub';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IotHubIdentityStore } from '../../../src/infra/iothub/iothub-identity-store.js';
import { IotHubTwinStore } from '../../../src/infra/iothub/iothub-twin-store.js';
import {
  CredentialsResetConflictError,
  ConcurrentUpdateError,
  ThrottledError,
} from '../../../src/shared/errors.js';
import { describeIdentityStoreContract } from '../../contract/identity-store-contract.js';
import { describeTwinStoreContract } from '../../contract/twin-store-contract.js';
import { routeHostToLoopback, startFakeIotHub, type FakeIotHub } from '../../fixtures/fake-iothub.js';

const { Registry } = iothub;

let hub: FakeIotHub;
let store: IotHubIdentityStore;
let restore: () => void;

beforeAll(async () => {
  hub = await startFakeIotHub();
  restore = routeHostToLoopback(hub.hostName, hub.port);
  store = new IotHubIdentityStore(Registry.fromConnectionString(hub.connectionString));
});
afterAll(async () => {
  restore();
  await hub.close();
});

describeIdentityStoreContract(
  'IotHubIdentityStore on the real azure-iothub SDK against a wire-level IoT Hub fake',
  () => ({
    create: (...a) => store.create(...a),
    get: (...a) => store.get(...a),
    setStatus: (...a) => store.setStatus(...a),
    regenerateKeys: (...a) => store.regenerateKeys(...a),
    delete: (...a) => store.delete(...a),
    createMany: (...a) => store.createMany(...a),
    deleteMany: (...a) => store.deleteMany(...a),
  }),
);

describeTwinStoreContract('IotHubTwinStore on the real azure-iothub SDK against the IoT Hub fake', () => ({
  twins: new IotHubTwinStore(Registry.fromConnectionString(hub.connectionString)),
  identities: store,
}));

describe('IotHubIdentityStore on the wire', () => {
  it('sent only authorized requests with the right api-version, and If-Match on updates and deletes', () => {
    expect(hub.requests.length).toBeGreaterThan(10);
    expect(hub.requests.every((r) => r.authorized)).toBe(true);
    const writes = hub.requests.filter(
      (r) => r.method === 'DELETE' || (r.method === 'PUT' && r.ifMatch !== undefined),
    );
    expect(writes.length).toBeGreaterThan(0);
    expect(writes.every((r) => r.ifMatch === '"*"')).toBe(true);
  });

  it('writes status and keys only at the ETag it read, re-reading after a concurrent change', async () => {
    await store.create('race-1');
    const before = hub.requests.length;
    hub.raceNextReads(1);
    const disabled = await store.setStatus('race-1', 'disabled');
    expect(disabled.status).toBe('disabled');
    expect(hub.devices.get('race-1')?.status).toBe('disabled');
    const bulkWrites = hub.requests.slice(before).filter((r) => r.method === 'POST' && r.path === '/devices');
    expect(bulkWrites).toHaveLength(2); // the first lost the race and was retried
    hub.raceNextReads(10);
    // Every attempt lost (Concurrency__MaxAttempts, 10): our race, not the caller's precondition (503, never 412).
    await expect(store.regenerateKeys('race-1')).rejects.toBeInstanceOf(ConcurrentUpdateError);
    hub.raceNextReads(0);
  });

  it('refuses a credential reset that lost the race to another reset (If-Match), re-applies one over a status change (issue 12, item 9)', async () => {
    await store.create('race-2');
    const winner = {
      primaryKey: Buffer.alloc(32, 7).toString('base64'),
      secondaryKey: Buffer.alloc(32, 8).toString('base64'),
    };
    hub.raceNextReads(1, (device) => {
      device.authentication = { ...device.authentication, symmetricKey: { ...winner } };
    });
    await expect(store.regenerateKeys('race-2')).rejects.toBeInstanceOf(CredentialsResetConflictError);
    expect((await store.get('race-2'))?.keys).toEqual(winner);

    hub.raceNextReads(1, (device) => {
      device.status = 'disabled';
    });
    const reset = await store.regenerateKeys('race-2');
    expect(await store.get('race-2')).toEqual({ deviceId: 'race-2', status: 'disabled', keys: reset.keys });
  });

  it('maps IoT Hub throttling (429) to ThrottledError', async () => {
    hub.throttleNext(1);
    await expect(store.create('throttled-1')).rejects.toBeInstanceOf(ThrottledError);
  });
});
