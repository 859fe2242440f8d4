/**
 * An app wired to its own database and containers with an archive made by the real ingest handler (Azurite +
 * the local Cosmos DB server): what the replay tests replay.
 */
import { CosmosClient, type Container } from '@azure/cosmos';
import { InvocationContext } from '@azure/functions';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { Agent } from 'node:https';
import type { AppConfig } from '../../../src/config.js';
import { createAdapters } from '../../../src/infra/adapters.js';
import { makeIngestTelemetry } from '../../../src/telemetry/ingest-telemetry.js';
import { iotHubBatch, type TestMessage } from '../../support/iothub-batch.js';
import { testConfig } from '../../support/local-env.js';

/** 2026-11-23T08:00Z: the archive spans 08:00–10:59 (three hours). */
export const START_MS = Date.UTC(2026, 10, 23, 8, 0, 0);
export const PARTITIONS = ['0', '1', '2', '3'];

/**
 * `messages` messages from `devices` devices (device d on partition d % 4), spread over three hours: every 5th
 * message an array body of two records (one `diagnostics`), every 7th one with a `gps` record (a stream without
 * state), a device timestamp in most. Per partition, sequence numbers 0, 1, 2, ….
 */
export function fleet(devices: number, messages: number): Map<string, TestMessage[]> {
  const byPartition = new Map<string, TestMessage[]>(PARTITIONS.map((p) => [p, []]));
  const spanMs = 3 * 3_600_000 - 1000;
  for (let i = 0; i < messages; i++) {
    const d = i % devices;
    const partition = PARTITIONS[d % 4] ?? '0';
    const list = byPartition.get(partition) ?? [];
    const enqueuedMs = START_MS + Math.floor((i * spanMs) / messages);
    const ts = new Date(enqueuedMs - 500).toISOString();
    const reading = { temperature: 20 + (i % 13) / 10, humidity: 40 + (i % 7), ts };
    // Every 11th a counter no double holds: the replay must keep its exact text.
    const text =
      i % 5 === 0
        ? JSON.stringify([reading, { _subject: 'diagnostics', rssi: -60 - (i % 30), ts }])
        : i % 7 === 0
          ? JSON.stringify({ _subject: 'gps', lat: 47 + i / 1e6, lon: 8 })
          : i % 11 === 0
            ? `${JSON.stringify(reading).slice(0, -1)},"counter":123456789012345678901234567890}`
            : JSON.stringify(reading);
    list.push({
      deviceId: `dev-${d}`,
      sequenceNumber: list.length,
      enqueuedTime: new Date(enqueuedMs).toISOString(),
      body: Buffer.from(text),
      ...(i % 3 === 0 ? { properties: { 'content-kind': 'reading', body: 'not the body' } } : {}),
    });
  }
  return byPartition;
}

export interface ArchivedApp {
  config: AppConfig;
  archiveContainer: ContainerClient;
  stateContainer: Container;
  /** Records archived (array bodies count each element). */
  records: number;
  messages: number;
}

/** Ingests the fleet in batches of `batchSize` per partition through the real ingest handler. */
export async function archivedApp(devices: number, messages: number, batchSize = 250): Promise<ArchivedApp> {
  const config = testConfig({ Ingest__StateCacheSize: '0' });
  const adapters = createAdapters(config);
  const ingest = makeIngestTelemetry({ ...adapters, options: config.ingest });
  let records = 0;
  for (const [partitionId, list] of fleet(devices, messages)) {
    for (let i = 0; i < list.length; i += batchSize) {
      const { bodies, triggerMetadata } = iotHubBatch(list.slice(i, i + batchSize), partitionId);
      const summary = await ingest(bodies, new InvocationContext({ triggerMetadata }));
      records += summary.records;
    }
  }
  const connection = 'connectionString' in config.storage ? config.storage.connectionString : '';
  const archiveContainer = BlobServiceClient.fromConnectionString(connection).getContainerClient(
    config.storage.rawArchiveContainer,
  );
  const cosmos = new CosmosClient({
    endpoint: config.cosmos.endpoint,
    key: config.cosmos.key ?? '',
    agent: new Agent({ rejectUnauthorized: false }),
    connectionPolicy: { enableEndpointDiscovery: false },
  });
  const stateContainer = cosmos
    .database(config.cosmos.databaseName)
    .container(config.cosmos.stateContainerName);
  return { config, archiveContainer, stateContainer, records, messages };
}

const SYSTEM = new Set(['_rid', '_self', '_etag', '_attachments', '_ts']);

/** Every state document by id: with system fields (`raw`) and without (`state`). */
export async function stateDocuments(container: Container) {
  const { resources } = await container.items.query<Record<string, unknown>>('SELECT * FROM c').fetchAll();
  const raw = new Map(resources.map((d) => [String(d.id), d]));
  const state = new Map(
    resources.map((d) => [
      String(d.id),
      Object.fromEntries(Object.entries(d).filter(([k]) => !SYSTEM.has(k))),
    ]),
  );
  return { raw, state };
}

/** Deletes every state document (the container stays). */
export async function wipeState(container: Container): Promise<number> {
  const { resources } = await container.items.query<{ id: string }>('SELECT c.id FROM c').fetchAll();
  for (const { id } of resources) await container.item(id, id).delete();
  return resources.length;
}

/** Names of every blob in the archive container. */
export async function blobNames(container: ContainerClient): Promise<string[]> {
  const names: string[] = [];
  for await (const b of container.listBlobsFlat()) names.push(b.name);
  return names.sort();
}
