import { TableClient } from '@azure/data-tables';
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { AesGcmCipher } from '../../../src/infra/crypto/aes-gcm-cipher.js';
import { TableIdentityStore } from '../../../src/infra/tables/table-identity-store.js';
import { TableTwinStore } from '../../../src/infra/tables/table-twin-store.js';
import { createSasToken } from '../../../src/provisioning/sas-token.js';
import { CredentialsResetConflictError } from '../../../src/shared/errors.js';
import { describeIdentityStoreContract } from '../../contract/identity-store-contract.js';
import { describeTwinStoreContract } from '../../contract/twin-store-contract.js';
import { testSettings } from '../../support/local-env.js';
import { closedPort } from '../../fixtures/closed-port.js';
import { FAULT_KINDS, startFaultProxy, type FaultKind, type FaultProxy } from '../../../tools/fault-proxy.js';
import { AZURITE_DEV_KEY } from '../../../tools/local-services.js';

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
  it('refuses a credential reset that lost the race to another reset, and re-applies one over a status change (issue 12, item 9)', async () => {
    // A second client on the same table whose first conditional write (the PUT with If-Match) waits until
    // `beforeWrite` has run: a deterministic race through the SDK's own pipeline, on the wire to Azurite.
    let beforeWrite: (() => Promise<unknown>) | undefined;
    const racing = TableClient.fromConnectionString(settings.AzureWebJobsStorage ?? '', tableName, {
      allowInsecureConnection: true,
      additionalPolicies: [
        {
          position: 'perCall',
          policy: {
            name: 'race',
            sendRequest: async (request, next) => {
              const hook = beforeWrite;
              if (request.method === 'PUT' && request.headers.get('if-match') && hook) {
                beforeWrite = undefined;
                await hook();
              }
              return next(request);
            },
          },
        },
      ],
    });
    const loser = new TableIdentityStore(racing, cipher, { createTableIfMissing: false });
    const id = 'reset-race';
    await store.create(id);

    let winner: Awaited<ReturnType<typeof store.regenerateKeys>> | undefined;
    beforeWrite = async () => (winner = await store.regenerateKeys(id));
    await expect(loser.regenerateKeys(id)).rejects.toBeInstanceOf(CredentialsResetConflictError);
    expect((await store.get(id))?.keys).toEqual(winner?.keys);

    beforeWrite = () => store.setStatus(id, 'disabled');
    const reset = await loser.regenerateKeys(id);
    expect(await store.get(id)).toEqual({ deviceId: id, status: 'disabled', keys: reset.keys });
  });

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
    expect(await store.authenticate(id, token, host)).toBe('valid');
    expect(await store.authenticate(id, createSasToken(uri, keys.secondaryKey, expiry), host)).toBe('valid');
    // A hub-scoped token signed with a device key: IoT Hub refuses it, and so do we (issue 12, item 10).
    expect(await store.authenticate(id, createSasToken(host, keys.primaryKey, expiry), host)).toBe(
      'wrong-resource',
    );
    expect(
      await store.authenticate(id, createSasToken(`${host}/devices/other`, keys.primaryKey, expiry), host),
    ).toBe('wrong-resource');
    expect(await store.authenticate(id, 'Bearer abc', host)).toBe('malformed');
    expect(await store.authenticate('nobody', token, host)).toBe('unknown-device');

    now = new Date((expiry + 1) * 1000);
    expect(await store.authenticate(id, token, host)).toBe('expired');
    now = new Date('2026-11-23T10:00:00Z');

    await store.setStatus(id, 'disabled');
    expect(await store.authenticate(id, token, host)).toBe('disabled');
    await store.setStatus(id, 'enabled');
    await store.regenerateKeys(id);
    expect(await store.authenticate(id, token, host)).toBe('bad-signature');
    await store.delete(id);
    expect(await store.authenticate(id, token, host)).toBe('unknown-device');
  });
});

describe('Table identity store and twins during an outage', () => {
  // An outage is ServiceUnavailableError (HTTP 503 + Retry-After), not ThrottledError and not a raw RestError
  // (a 500): review finding 9. Real failures only: a closed loopback port, the fault proxy in front of Azurite.
  const proxies: FaultProxy[] = [];
  afterAll(async () => {
    await Promise.all(proxies.map((p) => p.close()));
  });

  /** Identity and twin stores on a Table endpoint, with the SDK's retries cut short. */
  const storesAt = (tableEndpoint: string) => {
    const client = TableClient.fromConnectionString(
      'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;' +
        `AccountKey=${AZURITE_DEV_KEY};TableEndpoint=${tableEndpoint};`,
      tableName,
      { allowInsecureConnection: true, retryOptions: { maxRetries: 1, retryDelayInMs: 10 } },
    );
    return {
      identities: new TableIdentityStore(client, cipher, { createTableIfMissing: false }),
      twins: new TableTwinStore(client, false),
    };
  };

  const outcomes = async ({ identities, twins }: ReturnType<typeof storesAt>) => {
    const calls: [string, () => Promise<unknown>][] = [
      ['get', () => identities.get('out-1')],
      ['create', () => identities.create('out-2')],
      ['setStatus', () => identities.setStatus('out-1', 'disabled')],
      ['delete', () => identities.delete('out-1')],
      ['twins.get', () => twins.get('out-1')],
      ['twins.patchDesired', () => twins.patchDesired('out-1', { a: 1 })],
    ];
    const seen: [string, string][] = [];
    for (const [name, run] of calls) {
      seen.push([
        name,
        await run().then(
          () => 'resolved',
          (error: unknown) => (error instanceof Error ? error.constructor.name : typeof error),
        ),
      ]);
    }
    return seen;
  };

  it('is ServiceUnavailableError when nothing listens at the endpoint', async () => {
    const stores = storesAt(`http://127.0.0.1:${await closedPort()}/devstoreaccount1`);
    const seen = await outcomes(stores);
    expect(seen).toEqual(seen.map(([name]) => [name, 'ServiceUnavailableError']));
  });

  it.each<[FaultKind, string]>([
    ['unavailable', 'ServiceUnavailableError'],
    ['reset', 'ServiceUnavailableError'],
    ['timeout', 'ServiceUnavailableError'],
  ])('is %s → %s through the fault proxy', async (kind, expected) => {
    const tableOrigin = new URL(inject('localServices').tableEndpoint);
    const proxy = await startFaultProxy({
      target: tableOrigin.origin,
      dependency: 'blob',
      weights: Object.fromEntries(FAULT_KINDS.map((k) => [k, k === kind ? 1 : 0])),
      rate: 1,
      holdMs: 50,
      afterUpstreamShare: 0,
    });
    proxies.push(proxy);
    const seen = await outcomes(storesAt(`${proxy.origin}${tableOrigin.pathname}`));
    expect(seen).toEqual(seen.map(([name]) => [name, expected]));
    expect(proxy.counts().injected[kind]).toBeGreaterThan(0);
  });
});
