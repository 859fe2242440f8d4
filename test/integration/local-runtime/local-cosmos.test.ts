/**
 * The local Cosmos DB server with a data folder: what it answered 2xx is there after a crash (no final
 * snapshot) and after a clean stop, with the same etags; a write cut short in the journal is ignored.
 */
import { CosmosClient, type Container } from '@azure/cosmos';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLocalCosmosServer, type LocalCosmosServer } from '../../../tools/local-cosmos.js';
import { LOCAL_COSMOS_KEY, startLocalServices } from '../../../tools/local-services.js';

const folders: string[] = [];
afterAll(() => {
  for (const folder of folders) rmSync(folder, { recursive: true, force: true });
});
const tempFolder = () => {
  const folder = mkdtempSync(join(tmpdir(), 'local-cosmos-'));
  folders.push(folder);
  return folder;
};

async function start(
  folder: string,
): Promise<{ cosmos: LocalCosmosServer; container: () => Promise<Container> }> {
  const cosmos = createLocalCosmosServer(folder);
  await new Promise<void>((resolve) => cosmos.server.listen(0, '127.0.0.1', resolve));
  const client = new CosmosClient({
    endpoint: `https://127.0.0.1:${(cosmos.server.address() as AddressInfo).port}/`,
    key: LOCAL_COSMOS_KEY,
    agent: new Agent({ rejectUnauthorized: false }),
    connectionPolicy: { enableEndpointDiscovery: false },
  });
  const container = async () => {
    const { database } = await client.databases.createIfNotExists({ id: 'db' });
    const { container: c } = await database.containers.createIfNotExists({
      id: 'devices',
      partitionKey: { paths: ['/deviceId'] },
    });
    return c;
  };
  return { cosmos, container };
}

/** Stops answering at once, without the final snapshot: what a kill -9 leaves is the journal. */
async function crash(cosmos: LocalCosmosServer): Promise<void> {
  cosmos.server.closeAllConnections();
  await new Promise((resolve) => cosmos.server.close(resolve));
}

describe('local Cosmos DB server with a data folder', () => {
  it('keeps every acknowledged document write across a crash and a clean stop, etags included', async () => {
    const folder = tempFolder();
    const first = await start(folder);
    const devices = await first.container();
    await devices.items.create({ id: 'd1', deviceId: 'd1', n: 1 });
    await devices.items.upsert({ id: 'd2', deviceId: 'd2', n: 2 });
    await devices.items.upsert({ id: 'd2', deviceId: 'd2', n: 3 });
    const { resource: replaced } = await devices.item('d1', 'd1').replace({ id: 'd1', deviceId: 'd1', n: 4 });
    await devices.items.create({ id: 'd3', deviceId: 'd3' });
    await devices.item('d3', 'd3').delete();
    await crash(first.cosmos);
    // A write cut short by the crash: half a line at the end of the journal.
    appendFileSync(join(folder, 'journal.jsonl'), '{"seq":999,"db":"db","co');

    const second = await start(folder);
    const after = await second.container();
    const { resources } = await after.items.query('SELECT c.id, c.n FROM c ORDER BY c.id').fetchAll();
    expect(resources).toEqual([
      { id: 'd1', n: 4 },
      { id: 'd2', n: 3 },
    ]);
    const { resource: d1 } = await after.item('d1', 'd1').read<{ _etag: string }>();
    expect(d1?._etag).toBe(replaced?._etag);
    // An If-Match with the etag from before the restart still holds.
    await after
      .item('d1', 'd1')
      .replace(
        { id: 'd1', deviceId: 'd1', n: 5 },
        { accessCondition: { type: 'IfMatch', condition: d1?._etag ?? '' } },
      );
    await crash(second.cosmos);
    await second.cosmos.close();
    // A clean stop leaves everything in the snapshot and an empty journal.
    expect(readFileSync(join(folder, 'journal.jsonl'), 'utf8')).toBe('');

    const third = await start(folder);
    const { resource } = await (await third.container()).item('d1', 'd1').read<{ n: number }>();
    expect(resource?.n).toBe(5);
    await crash(third.cosmos);
  });

  it('persists Cosmos data of startLocalServices under {dataDir}/cosmos, and keeps nothing in memory mode', async () => {
    const dataDir = tempFolder();
    const write = async (inMemory: boolean) => {
      const services = await startLocalServices({ inMemory, dataDir, location: join(dataDir, 'azurite') });
      const client = new CosmosClient({
        endpoint: services.cosmosEndpoint,
        key: services.cosmosKey,
        agent: new Agent({ rejectUnauthorized: false }),
        connectionPolicy: { enableEndpointDiscovery: false },
      });
      const { database } = await client.databases.createIfNotExists({ id: 'registry' });
      const { container } = await database.containers.createIfNotExists({ id: 'devices' });
      const { resources } = await container.items.readAll().fetchAll();
      await container.items.upsert({ id: `seen-${resources.length}` });
      await services.stop();
      return resources.map((r) => r.id).sort();
    };
    expect(await write(false)).toEqual([]);
    expect(await write(false)).toEqual(['seen-0']);
    expect(await write(true)).toEqual([]);
  }, 60_000);
});

describe('local Cosmos DB server connections', () => {
  it('keeps a connection alive across requests (one TLS handshake, not one per request)', async () => {
    const cosmos = createLocalCosmosServer();
    await new Promise<void>((resolve) => cosmos.server.listen(0, '127.0.0.1', resolve));
    let handshakes = 0;
    cosmos.server.on('secureConnection', () => handshakes++);
    const client = new CosmosClient({
      endpoint: `https://127.0.0.1:${(cosmos.server.address() as AddressInfo).port}/`,
      key: LOCAL_COSMOS_KEY,
      agent: new Agent({ rejectUnauthorized: false, keepAlive: true, maxSockets: 1 }),
      connectionPolicy: { enableEndpointDiscovery: false },
    });
    try {
      const { database } = await client.databases.createIfNotExists({ id: 'db' });
      const { container } = await database.containers.createIfNotExists({ id: 'c' });
      handshakes = 0;
      for (let i = 0; i < 20; i++) await container.items.upsert({ id: `d${i % 3}`, n: i });
      // Every request paid a TLS handshake before (the server answered `connection: close`): at simulator rates
      // that churned native memory (RSS) far more than anything the runtime keeps.
      expect(handshakes).toBeLessThanOrEqual(1);
    } finally {
      client.dispose();
      cosmos.server.closeAllConnections();
      await new Promise((resolve) => cosmos.server.close(resolve));
    }
  });
});
