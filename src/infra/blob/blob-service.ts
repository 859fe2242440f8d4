import { DefaultAzureCredential } from '@azure/identity';
import { BlobServiceClient } from '@azure/storage-blob';
import type { StorageConfig } from '../../config.js';

/** One BlobServiceClient per process: a connection string, or a service URI with a managed identity. */
export function createBlobService(config: StorageConfig): BlobServiceClient {
  return 'connectionString' in config
    ? BlobServiceClient.fromConnectionString(config.connectionString)
    : new BlobServiceClient(config.blobServiceUri, new DefaultAzureCredential());
}
