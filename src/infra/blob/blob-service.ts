import { DefaultAzureCredential } from '@azure/identity';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import type { StorageConfig } from '../../config.js';
import { onFirstUse } from '../lazy.js';

/** One BlobServiceClient per process: a connection string, or a service URI with a managed identity. */
export function createBlobService(config: StorageConfig): BlobServiceClient {
  return 'connectionString' in config
    ? BlobServiceClient.fromConnectionString(config.connectionString)
    : new BlobServiceClient(config.blobServiceUri, new DefaultAzureCredential());
}

/** The HTTP status behind a storage SDK error (RestError keeps it as `statusCode`). */
export const blobStatus = (error: unknown): number | undefined =>
  typeof error === 'object' && error !== null && 'statusCode' in error
    ? (error as { statusCode?: number }).statusCode
    : undefined;

/** A container handle, the container created (private) on first use when `createIfMissing` is set. */
export function lazyBlobContainer(
  service: BlobServiceClient,
  containerName: string,
  createIfMissing: boolean,
): () => Promise<ContainerClient> {
  return onFirstUse(async () => {
    const client = service.getContainerClient(containerName);
    if (createIfMissing) await client.createIfNotExists();
    return client;
  });
}
