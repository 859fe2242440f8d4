import { TableClient } from '@azure/data-tables';
import { randomBytes, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AesGcmCipher } from '../../../src/infra/crypto/aes-gcm-cipher.js';
import { TableIdentityStore } from '../../../src/infra/tables/table-identity-store.js';
import { TableTwinStore } from '../../../src/infra/tables/table-twin-store.js';
import { createSasToken } from '../../../src/provisioning/sas-token.js';
import { describeIdentityStoreContract } from '../../contract/identity-store-contract.js';
import { describeTwinStoreContract } from '../../contract/twin-store-contract.js';
import { testSettings } from '../../support/local-env.js';

const settings = testSettings();
const tableName = `identities${randomUUID().replaceAll('-', '').slice(0, 12)}`;
const table = TableClient.fromConnectionString(settings.AzureWebJobsStorage ?? '', tableName, {
  allowInsecureConnection: true,
});
const cipher = new AesGcmCipher(randomBytes(32).toString('base64'));
let now = new Date('2026-11-23T10:00:00Z');
const store = new TableIdentityStore(table, cipher, { createTableIfMissing: true, now: () => now });

describeIdentityStoreContract('TableIdentityStore on Azurite', () => store);
describeTwinStoreContract('TableTwinStore on Azurite', () => ({
  twins: new TableTwinStore(table, true),
  identities: store,
}));

describe('TableIdentityStore specifics', () => {
  it('stores keys only encrypted, bound to their device', async () => {
    const created = await store.create('enc-1');
    const raw = await table.getEntity('enc-1', 'identity');
    const stored = JSON.stringify(raw);
    expect(stored).not.toContain(created.keys.primaryKey);
    expect(stored).not.toContain(created.keys.secondaryKey);
    // A ciphertext copied onto another device's row does not decrypt.
    await store.create('enc-2');
    await table.updateEntity({ partitionKey: 'enc-2', rowKey: 'identity', keys: raw.keys }, 'Merge');
    await expect(store.get('enc-2')).rejects.toThrow();
  });

  it('authenticates SAS tokens, and refuses at once after deactivation, key rotation or deletion', async () => {
    const host = 'local.azure-devices.net';
    const id = 'sas-1';
    const uri = `${host}/devices/${id}`;
    const { keys } = await store.create(id);
    const expiry = Math.floor(now.getTime() / 1000) + 3600;
    const token = createSasToken(uri, keys.primaryKey, expiry);
    expect(await store.authenticate(id, token, uri)).toBe('valid');
    expect(await store.authenticate(id, createSasToken(uri, keys.secondaryKey, expiry), uri)).toBe('valid');
    expect(await store.authenticate(id, createSasToken(host, keys.primaryKey, expiry), uri)).toBe('valid');
    expect(
      await store.authenticate(id, createSasToken(`${host}/devices/other`, keys.primaryKey, expiry), uri),
    ).toBe('wrong-resource');
    expect(await store.authenticate(id, 'Bearer abc', uri)).toBe('malformed');
    expect(await store.authenticate('nobody', token, `${host}/devices/nobody`)).toBe('unknown-device');

    now = new Date((expiry + 1) * 1000);
    expect(await store.authenticate(id, token, uri)).toBe('expired');
    now = new Date('2026-11-23T10:00:00Z');

    await store.setStatus(id, 'disabled');
    expect(await store.authenticate(id, token, uri)).toBe('disabled');
    await store.setStatus(id, 'enabled');
    await store.regenerateKeys(id);
    expect(await store.authenticate(id, token, uri)).toBe('bad-signature');
    await store.delete(id);
    expect(await store.authenticate(id, token, uri)).toBe('unknown-device');
  });
});
