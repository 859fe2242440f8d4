import { DefaultAzureCredential } from '@azure/identity';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import type { StorageConfig } from '../../config.js';
import { onFirstUse } from '../lazy.js';
import { translateBlobError } from '../storage/errors.js';

/** One BlobServiceClient per process: a connection string, or a service URI with a managed identity. */
export function createBlobService(config: StorageConfig): BlobServiceClient {
  return 'connectionString' in config
    ? BlobServiceClient.fromConnectionString(config.connectionString)
    : new BlobServiceClient(config.blobServiceUri, new DefaultAzureCredential());
}

/**
 * A container handle, the container created (private) on first use when `createIfMissing` is set; failing to
 * create it is translated like any other Blob storage call.
 */
export function lazyBlobContainer(
  service: BlobServiceClient,
  containerName: string,
  createIfMissing: boolean,
): () => Promise<ContainerClient> {
  return onFirstUse(async () => {
    const client = service.getContainerClient(containerName);
    try {
      if (createIfMissing) await client.createIfNotExists();
    } catch (error) {
      throw translateBlobError(error);
    }
    return client;
  });
}

/** Runs Blob storage calls; what they throw is translated (throttling, outages: see translateBlobError). */
export async function blobCall<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    throw translateBlobError(error);
  }
}
