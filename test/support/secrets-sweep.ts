/**
 * The end-of-run secrets sweep (issue 12, "What it must show"): reads back everything a run left in its stores
 * — every blob of every container of the storage account (gzip bodies unpacked, metadata included), every
 * entity of every table (the durable engine's instance store with histories, inputs, outputs and custom
 * status; the identity store), every document of every container of the Cosmos database — plus the answers
 * and log lines the test collected, and searches them for needles. Hits name the place and the needle's label,
 * never the value. Bounded: one pass, every read paged by the SDKs.
 */
import { TableClient, TableServiceClient } from '@azure/data-tables';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { gunzipSync } from 'node:zlib';
import type { CosmosConfig } from '../../src/config.js';
import { AesGcmCipher } from '../../src/infra/crypto/aes-gcm-cipher.js';
import { createCosmosClient } from '../../src/infra/cosmos/cosmos-client.js';

/** Something to look for: a secret (no hit allowed) or a marker (proves a store was really read). */
export interface Needle {
  label: string;
  value: string;
  kind: 'secret' | 'marker';
}

export interface Hit {
  store: 'blob' | 'table' | 'cosmos' | 'answer' | 'log' | 'hook';
  where: string;
  label: string;
  kind: Needle['kind'];
}

/** What a sweep read. */
export interface SweepCounts {
  containers: number;
  blobs: number;
  blobBytes: number;
  tables: number;
  entities: number;
  cosmosContainers: number;
  documents: number;
  texts: number;
}

/** Durable's management URLs and the system key's query parameter, in any stored or answered text. */
export const MANAGEMENT_URL =
  /[?&]code=|runtime\/webhooks|statusQueryGetUri|sendEventPostUri|terminatePostUri|purgeHistoryDeleteUri/i;

/** The forms a secret may take in stored text: as is, and URL-encoded (a query string, a connection URL). */
const formsOf = (value: string): string[] => [...new Set([value, encodeURIComponent(value)])];

/** Searches texts for needles and the management-URL pattern, collecting hits and counts. */
export class SecretsSweep {
  readonly hits: Hit[] = [];
  readonly counts: SweepCounts = {
    containers: 0,
    blobs: 0,
    blobBytes: 0,
    tables: 0,
    entities: 0,
    cosmosContainers: 0,
    documents: 0,
    texts: 0,
  };

  constructor(private readonly needles: readonly Needle[]) {
    for (const needle of needles) {
      // A short value would match ordinary text and prove nothing.
      if (needle.kind === 'secret' && needle.value.length < 16)
        throw new Error(`Needle ${needle.label} is too short to search for.`);
    }
  }

  /** Searches one text. */
  search(store: Hit['store'], where: string, text: string): void {
    this.counts.texts++;
    if (MANAGEMENT_URL.test(text)) {
      this.hits.push({ store, where, label: 'a Durable management URL', kind: 'secret' });
    }
    for (const needle of this.needles) {
      if (formsOf(needle.value).some((form) => text.includes(form))) {
        this.hits.push({ store, where, label: needle.label, kind: needle.kind });
      }
    }
  }

  /** Every blob (body and metadata) of every container of the account. */
  async blobs(connectionString: string): Promise<void> {
    const service = BlobServiceClient.fromConnectionString(connectionString);
    for await (const container of service.listContainers({ includeMetadata: true })) {
      this.counts.containers++;
      this.search('blob', `container ${container.name} (metadata)`, JSON.stringify(container.metadata ?? {}));
      await this.container(service.getContainerClient(container.name));
    }
  }

  private async container(client: ContainerClient): Promise<void> {
    for await (const blob of client.listBlobsFlat({ includeMetadata: true })) {
      let body: Buffer;
      try {
        body = await client.getBlobClient(blob.name).downloadToBuffer();
      } catch (error) {
        // Other test files share the account and delete their blobs while this one lists them.
        if ((error as { statusCode?: number }).statusCode === 404) continue;
        throw error;
      }
      this.counts.blobs++;
      this.counts.blobBytes += body.length;
      const where = `blob ${client.containerName}/${blob.name}`;
      const text = body[0] === 0x1f && body[1] === 0x8b ? gunzipSync(body).toString('utf8') : body.toString();
      this.search('blob', where, `${blob.name}\n${JSON.stringify(blob.metadata ?? {})}\n${text}`);
    }
  }

  /** Every entity of every table of the account (the durable instance store, the identity store, …). */
  async tables(connectionString: string): Promise<void> {
    const options = { allowInsecureConnection: true };
    const service = TableServiceClient.fromConnectionString(connectionString, options);
    for await (const table of service.listTables()) {
      const name = table.name ?? '';
      this.counts.tables++;
      const client = TableClient.fromConnectionString(connectionString, name, options);
      for await (const entity of client.listEntities()) {
        this.counts.entities++;
        this.search('table', `table ${name} ${entity.partitionKey}/${entity.rowKey}`, JSON.stringify(entity));
      }
    }
  }

  /** Every document of every container of the database. */
  async cosmos(config: CosmosConfig, databaseName: string): Promise<void> {
    const database = createCosmosClient(config).database(databaseName);
    const { resources: containers } = await database.containers.readAll().fetchAll();
    for (const { id } of containers) {
      this.counts.cosmosContainers++;
      const iterator = database.container(id).items.readAll({ maxItemCount: 500 });
      while (iterator.hasMoreResults()) {
        const { resources } = await iterator.fetchNext();
        for (const document of resources) {
          this.counts.documents++;
          this.search('cosmos', `cosmos ${id}/${String(document.id)}`, JSON.stringify(document));
        }
      }
    }
  }

  /** The hits a test does not allow: every secret hit. */
  secretHits(): string[] {
    return this.hits.filter((h) => h.kind === 'secret').map((h) => `${h.where}: ${h.label}`);
  }

  /** The stores in which a marker was found. */
  markerStores(label: string): Set<Hit['store']> {
    return new Set(this.hits.filter((h) => h.kind === 'marker' && h.label === label).map((h) => h.store));
  }
}

/**
 * The device keys held by the table identity store, by device id: its raw rows, opened with the store's
 * encryption key (each ciphertext is bound to its device id). Only devices `wanted` accepts are opened.
 */
export async function identityStoreKeys(
  connectionString: string,
  tableName: string,
  encryptionKey: string,
  wanted: (deviceId: string) => boolean,
): Promise<Map<string, string[]>> {
  const cipher = new AesGcmCipher(encryptionKey);
  const client = TableClient.fromConnectionString(connectionString, tableName, {
    allowInsecureConnection: true,
  });
  const out = new Map<string, string[]>();
  for await (const entity of client.listEntities<{ deviceId?: string; keys?: string }>({
    queryOptions: { filter: `RowKey eq 'identity'` },
  })) {
    const { deviceId, keys } = entity;
    if (deviceId === undefined || keys === undefined || !wanted(deviceId)) continue;
    out.set(deviceId, JSON.parse(cipher.decrypt(keys, deviceId)) as string[]);
  }
  return out;
}
