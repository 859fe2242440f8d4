import type { BlobServiceClient, ContainerClient } from '@azure/storage-blob';
import type { DeadLetterStore, RawArchive, WriteOnceOutcome } from '../../telemetry/ports.js';
import { isConflict, isPreconditionFailed, translateBlobError } from '../storage/errors.js';
import { lazyBlobContainer } from './blob-service.js';

/**
 * Write-once JSON-lines blobs in one container: what the raw archive and the dead letters are made of. Each blob is
 * uploaded in a single Put Blob with If-None-Match: *, so a blob is either whole or absent, and a replay finds it.
 */
export class BlobJsonLinesStore {
  private readonly container: () => Promise<ContainerClient>;

  constructor(service: BlobServiceClient, containerName: string, createIfMissing: boolean) {
    this.container = lazyBlobContainer(service, containerName, createIfMissing);
  }

  async put(name: string, lines: readonly string[]): Promise<WriteOnceOutcome> {
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

/** RawArchive on write-once JSON-lines blobs (container RawArchiveContainerName). */
export class BlobRawArchive implements RawArchive {
  constructor(private readonly blobs: BlobJsonLinesStore) {}

  archive(name: string, lines: readonly string[]): Promise<WriteOnceOutcome> {
    return this.blobs.put(name, lines);
  }
}

/** DeadLetterStore on write-once JSON-lines blobs (container DeadLetterContainerName). */
export class BlobDeadLetterStore implements DeadLetterStore {
  constructor(private readonly blobs: BlobJsonLinesStore) {}

  park(name: string, lines: readonly string[]): Promise<WriteOnceOutcome> {
    return this.blobs.put(name, lines);
  }
}
