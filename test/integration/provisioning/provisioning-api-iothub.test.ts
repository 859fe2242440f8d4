import { HttpRequest, InvocationContext, type HttpResponseInit } from '@azure/functions';
// azure-iothub is CommonJS without named exports that Node's ESM loader can see: take them from the default.
import iothub from 'azure-iothub';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withProblemDetails } from '../../../src/http/problem.js';
import { createAdapters } from '../../../src/infra/adapters.js';
import { createCosmosClient, lazyContainer } from '../../../src/infra/cosmos/cosmos-client.js';
import { CosmosDeviceCatalog } from '../../../src/infra/cosmos/cosmos-device-catalog.js';
import { IotHubIdentityStore } from '../../../src/infra/iothub/iothub-identity-store.js';
import { IotHubTwinStore } from '../../../src/infra/iothub/iothub-twin-store.js';
import { makeProvisioningHandlers } from '../../../src/provisioning/http-handlers.js';
import { ProvisioningService } from '../../../src/provisioning/provisioning-service.js';
import { routeHostToLoopback, startFakeIotHub, type FakeIotHub } from '../../fixtures/fake-iothub.js';
import { testConfig } from '../../support/local-env.js';
import { responseProblems } from '../../support/openapi.js';

const { Registry } = iothub;

// The provisioning API with the production identity store (IoT Hub through the real SDK, against the wire-level
// fake): the throttled (429) and internal-error (500) answers, which the table store cannot be made to give.

let hub: FakeIotHub;
let restore: () => void;
const config = testConfig();
const adapters = createAdapters(config);

function handlersWith(catalogDatabase: string) {
  const identityRegistry = Registry.fromConnectionString(hub.connectionString);
  const service = new ProvisioningService({
    ...adapters,
    identities: new IotHubIdentityStore(identityRegistry),
    twins: new IotHubTwinStore(identityRegistry),
    catalog: new CosmosDeviceCatalog(
      lazyContainer(createCosmosClient(config.cosmos), catalogDatabase, 'devices', {
        create: catalogDatabase === config.cosmos.databaseName,
        partitionKeyPath: '/id',
      }),
    ),
    hostName: hub.hostName,
    maxMetadataBytes: 8192,
  });
  return makeProvisioningHandlers(service);
}

async function register(handlers: ReturnType<typeof makeProvisioningHandlers>, body: unknown) {
  const response = (await withProblemDetails(handlers.registerDevice)(
    new HttpRequest({
      method: 'POST',
      url: 'http://localhost/api/devices',
      headers: { 'content-type': 'application/json' },
      body: { string: JSON.stringify(body) },
    }),
    new InvocationContext({ logHandler: () => undefined }),
  )) as HttpResponseInit;
  const json: unknown = response.jsonBody ?? JSON.parse(response.body as string);
  const contentType = (response.headers as Record<string, string> | undefined)?.['content-type'];
  expect(responseProblems('registerDevice', response.status ?? 200, json, contentType)).toEqual([]);
  return { status: response.status, body: json as Record<string, unknown> };
}

beforeAll(async () => {
  hub = await startFakeIotHub();
  restore = routeHostToLoopback(hub.hostName, hub.port);
});
afterAll(async () => {
  restore();
  await hub.close();
});

describe('provisioning API on the IoT Hub identity store', () => {
  it('registers through IoT Hub, with a connection string for its host name', async () => {
    const res = await register(handlersWith(config.cosmos.databaseName), { id: 'hub-1' });
    expect(res.status).toBe(201);
    expect(res.body.connectionString).toMatch(
      /^HostName=fakehub\.azure-devices\.net;DeviceId=hub-1;SharedAccessKey=/,
    );
    expect(hub.devices.get('hub-1')?.status).toBe('enabled');
  });

  it('answers 503 with retry-after when IoT Hub throttles', async () => {
    hub.throttleNext(1);
    const res = await register(handlersWith(config.cosmos.databaseName), { id: 'hub-2' });
    expect(res.status).toBe(503);
    expect(res.body.type).toBe('urn:problem-type:throttled');
  });

  it('answers 500 without internals when the device catalog fails, after deleting the identity again', async () => {
    const res = await register(handlersWith('no-such-database'), { id: 'hub-3' });
    expect(res.status).toBe(500);
    expect(JSON.stringify(res.body)).not.toMatch(/no-such-database|stack|Error:/);
    expect(hub.devices.has('hub-3')).toBe(false);
  });
});
