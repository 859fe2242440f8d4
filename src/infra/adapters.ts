import type { AppConfig } from '../config.js';
import type { DeadLetterStore, DeviceStateStore, RawArchive } from '../telemetry/ports.js';
import { BlobJsonLinesStore } from './blob/blob-json-lines-store.js';
import { createBlobService } from './blob/blob-service.js';
import { createCosmosClient, lazyContainer } from './cosmos/cosmos-client.js';
import { CosmosDeviceStateStore } from './cosmos/cosmos-device-state-store.js';

/** Every adapter the app uses, built from validated config with one SDK client per service. */
export interface Adapters {
  stateStore: DeviceStateStore;
  archive: RawArchive;
  deadLetters: DeadLetterStore;
}

export function createAdapters(config: AppConfig): Adapters {
  const create = config.createResourcesIfMissing;
  const cosmos = createCosmosClient(config.cosmos);
  const blobs = createBlobService(config.storage);
  return {
    stateStore: new CosmosDeviceStateStore(
      lazyContainer(cosmos, config.cosmos.databaseName, config.cosmos.stateContainerName, {
        create,
        partitionKeyPath: '/id',
      }),
      config.ingest.stateCacheSize,
      config.ingest.stateCacheTtlMs,
    ),
    archive: new BlobJsonLinesStore(blobs, config.storage.rawArchiveContainer, create),
    deadLetters: new BlobJsonLinesStore(blobs, config.storage.deadLetterContainer, create),
  };
}
