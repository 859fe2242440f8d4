import type { BlobServiceClient, ContainerClient } from '@azure/storage-blob';
import type { JsonLinesStore } from '../../telemetry/ports.js';
import { isConflict, isPreconditionFailed, translateBlobError } from '../storage/errors.js';
import { lazyBlobContainer } from './blob-service.js';

/**
 * Write-once JSON-lines blobs in one container: the raw archive and the dead letters. Each blob is uploaded in
 * a single Put Blob with If-None-Match: *, so a blob is either whole or absent, and a replay finds it there.
 */
export class BlobJsonLinesStore implements JsonLinesStore {
  private readonly container: () => Promise<ContainerClient>;

  constructor(service: BlobServiceClient, containerName: string, createIfMissing: boolean) {
    this.container = lazyBlobContainer(service, containerName, createIfMissing);
  }

  async put(name: string, lines: readonly string[]): Promise<'created' | 'exists'> {
    const container = await this.container();
    const body = Buffer.from(lines.join('\n') + '\n', 'utf8');
    try {
      await container.getBlockBlobClient(name).uploadData(body, {
        // One Put Blob up to 256 MiB: the upload is atomic, never a partial blob.
        maxSingleShotSize: 256 * 1024 * 1024,
        conditions: { ifNoneMatch: '*' },
        blobHTTPHeaders: { blobContentType: 'application/x-ndjson; charset=utf-8' },
      });
      return 'created';
    } catch (error) {
      if (isConflict(error) || isPreconditionFailed(error)) return 'exists';
      throw translateBlobError(error);
    }
  }
}
