import https from 'node:https';
import { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';
import { Registry } from 'azure-iothub';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IotHubIdentityStore } from '../../../src/infra/iothub/iothub-identity-store.js';
import { IotHubTwinStore } from '../../../src/infra/iothub/iothub-twin-store.js';
import { ThrottledError } from '../../../src/shared/errors.js';
import { describeIdentityStoreContract } from '../../contract/identity-store-contract.js';
import { describeTwinStoreContract } from '../../contract/twin-store-contract.js';
import { startFakeIotHub, type FakeIotHub } from '../../fixtures/fake-iothub.js';

type CreateConnection = (
  this: https.Agent,
  options: https.RequestOptions,
  callback?: (err: Error | null, socket: Duplex) => void,
) => Duplex;

// The module object the SDK's require('https') sees (an ESM import may be a copy under vitest).
const httpsModule = createRequire(import.meta.url)('node:https') as typeof https;
const agentPrototype = httpsModule.Agent.prototype as unknown as { createConnection: CreateConnection };
const originalCreateConnection = agentPrototype.createConnection;
let hub: FakeIotHub;
let store: IotHubIdentityStore;

/**
 * The SDK always dials `https://{HostName}:443` through its own keep-alive agent. In this test process only,
 * connections for the fake hub's host name go to the loopback fake instead (accepting its self-signed
 * certificate); every other connection is untouched.
 */
beforeAll(async () => {
  hub = await startFakeIotHub();
  const { hostName, port } = hub;
  agentPrototype.createConnection = function (options, callback) {
    const ours = options.host === hostName || options.hostname === hostName;
    const target = ours
      ? {
          ...options,
          host: '127.0.0.1',
          hostname: '127.0.0.1',
          port,
          servername: hostName,
          rejectUnauthorized: false,
        }
      : options;
    return originalCreateConnection.call(this, target, callback);
  };
  store = new IotHubIdentityStore(Registry.fromConnectionString(hub.connectionString));
});
afterAll(async () => {
  agentPrototype.createConnection = originalCreateConnection;
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

  it('maps IoT Hub throttling (429) to ThrottledError', async () => {
    hub.throttleNext(1);
    await expect(store.create('throttled-1')).rejects.toBeInstanceOf(ThrottledError);
  });
});
