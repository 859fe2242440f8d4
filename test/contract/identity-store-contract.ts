import { describe, expect, it } from 'vitest';
import { generateKeys } from '../../src/provisioning/keys.js';
import { MAX_BULK_DEVICES, type IdentityStore } from '../../src/provisioning/ports.js';
import { DeviceAlreadyExistsError, DeviceNotFoundError, ValidationError } from '../../src/shared/errors.js';

let counter = 0;
/** A device id no other test uses, with characters IoT Hub allows but storage keys do not. */
const uniqueId = (label: string) => `${label}-${Date.now().toString(36)}-${counter++}#?`;

/**
 * The behaviour every IdentityStore adapter must share: run against the table store on Azurite and the IoT Hub
 * store on the wire-level IoT Hub fake.
 */
export function describeIdentityStoreContract(name: string, makeStore: () => IdentityStore): void {
  describe(`IdentityStore contract: ${name}`, () => {
    const store = makeStore();

    it('creates an enabled identity with generated keys, and reads it back', async () => {
      const id = uniqueId('gen');
      const created = await store.create(id);
      expect(created.status).toBe('enabled');
      expect(Buffer.from(created.keys.primaryKey, 'base64')).toHaveLength(32);
      expect(created.keys.primaryKey).not.toBe(created.keys.secondaryKey);
      expect(await store.get(id)).toEqual(created);
    });

    it('creates with given keys', async () => {
      const id = uniqueId('given');
      const keys = generateKeys();
      expect((await store.create(id, keys)).keys).toEqual(keys);
      expect((await store.get(id))?.keys).toEqual(keys);
    });

    it('creates a disabled identity when asked (a workflow activates it at the end)', async () => {
      const id = uniqueId('disabled');
      expect((await store.create(id, undefined, 'disabled')).status).toBe('disabled');
      expect((await store.get(id))?.status).toBe('disabled');
    });

    it('refuses a duplicate id', async () => {
      const id = uniqueId('dup');
      await store.create(id);
      await expect(store.create(id)).rejects.toBeInstanceOf(DeviceAlreadyExistsError);
    });

    it('refuses invalid ids and keys', async () => {
      await expect(store.create('has space')).rejects.toBeInstanceOf(ValidationError);
      await expect(
        store.create(uniqueId('k'), { primaryKey: 'short', secondaryKey: 'short' }),
      ).rejects.toBeInstanceOf(ValidationError);
    });

    it('is undefined for an unknown device', async () => {
      expect(await store.get(uniqueId('none'))).toBeUndefined();
    });

    it('disables and enables', async () => {
      const id = uniqueId('status');
      await store.create(id);
      expect((await store.setStatus(id, 'disabled')).status).toBe('disabled');
      expect((await store.get(id))?.status).toBe('disabled');
      expect((await store.setStatus(id, 'enabled')).status).toBe('enabled');
      await expect(store.setStatus(uniqueId('none'), 'disabled')).rejects.toBeInstanceOf(DeviceNotFoundError);
    });

    it('regenerates keys, generated or given', async () => {
      const id = uniqueId('regen');
      const created = await store.create(id);
      const regenerated = await store.regenerateKeys(id);
      expect(regenerated.keys.primaryKey).not.toBe(created.keys.primaryKey);
      expect((await store.get(id))?.keys).toEqual(regenerated.keys);
      const keys = generateKeys();
      expect((await store.regenerateKeys(id, keys)).keys).toEqual(keys);
      await expect(store.regenerateKeys(uniqueId('none'))).rejects.toBeInstanceOf(DeviceNotFoundError);
    });

    it('deletes, and says whether there was anything to delete', async () => {
      const id = uniqueId('del');
      await store.create(id);
      expect(await store.delete(id)).toBe(true);
      expect(await store.get(id)).toBeUndefined();
      expect(await store.delete(id)).toBe(false);
    });

    it('bulk-creates and bulk-deletes with one outcome per device, in order', async () => {
      const existing = uniqueId('bulk-existing');
      await store.create(existing);
      const ids = [uniqueId('bulk'), existing, uniqueId('bulk')];
      const created = await store.createMany(ids.map((deviceId) => ({ deviceId })));
      expect(created.map((o) => [o.deviceId, o.ok])).toEqual([
        [ids[0], true],
        [existing, false],
        [ids[2], true],
      ]);
      expect(created[1]).toMatchObject({ ok: false, error: 'already-exists' });
      const missing = uniqueId('bulk-missing');
      const deleted = await store.deleteMany([ids[0] ?? '', missing]);
      expect(deleted).toMatchObject([
        { deviceId: ids[0], ok: true },
        { deviceId: missing, ok: false, error: 'not-found' },
      ]);
      expect(await store.get(ids[0] ?? '')).toBeUndefined();
    });

    it(`refuses bulk operations over ${MAX_BULK_DEVICES} devices`, async () => {
      const ids = Array.from({ length: MAX_BULK_DEVICES + 1 }, (_, i) => `over-${i}`);
      await expect(store.createMany(ids.map((deviceId) => ({ deviceId })))).rejects.toBeInstanceOf(
        ValidationError,
      );
      await expect(store.deleteMany(ids)).rejects.toBeInstanceOf(ValidationError);
    });
  });
}
