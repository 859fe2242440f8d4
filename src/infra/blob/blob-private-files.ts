import type { BlobServiceClient, ContainerClient } from '@azure/storage-blob';
import type { PrivateFiles } from '../../provisioning/ports.js';
import { isConflict, isNotFound, isPreconditionFailed } from '../storage/errors.js';
import { blobCall, lazyBlobContainer } from './blob-service.js';

/** The whole body of a download, as UTF-8 text. */
async function streamText(stream: NodeJS.ReadableStream | undefined): Promise<string | undefined> {
  if (stream === undefined) return undefined;
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks).toString('utf8');
}

/** PrivateFiles in one blob container with no public access (the container is created private). */
export class BlobPrivateFiles implements PrivateFiles {
  private readonly container: () => Promise<ContainerClient>;

  constructor(service: BlobServiceClient, containerName: string, createIfMissing: boolean) {
    this.container = lazyBlobContainer(service, containerName, createIfMissing);
  }

  writeOnce(name: string, text: string): Promise<string> {
    return blobCall(async () => {
      try {
        await this.upload(name, text, { ifNoneMatch: '*' });
        return text;
      } catch (error) {
        if (!isConflict(error) && !isPreconditionFailed(error)) throw error;
        const stored = await this.read(name);
        if (stored === undefined) throw error;
        return stored;
      }
    });
  }

  write(name: string, text: string): Promise<void> {
    return blobCall(() => this.upload(name, text));
  }

  read(name: string): Promise<string | undefined> {
    return blobCall(async () => {
      try {
        const buffer = await (await this.container()).getBlockBlobClient(name).downloadToBuffer();
        return buffer.toString('utf8');
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    });
  }

  readVersioned(name: string): Promise<{ text: string; etag: string } | undefined> {
    return blobCall(async () => {
      try {
        const blob = (await this.container()).getBlockBlobClient(name);
        const response = await blob.download();
        const text = (await streamText(response.readableStreamBody)) ?? '';
        return { text, etag: response.etag ?? '' };
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    });
  }

  replaceIfUnchanged(name: string, text: string, etag: string): Promise<boolean> {
    return blobCall(async () => {
      try {
        await this.upload(name, text, { ifMatch: etag });
        return true;
      } catch (error) {
        if (isPreconditionFailed(error) || isNotFound(error)) return false;
        throw error;
      }
    });
  }

  deletePrefix(prefix: string): Promise<void> {
    return blobCall(async () => {
      const container = await this.container();
      for await (const blob of container.listBlobsFlat({ prefix })) {
        await container.deleteBlob(blob.name).catch((error: unknown) => {
          if (!isNotFound(error)) throw error;
        });
      }
    });
  }

  list(prefix: string): Promise<string[]> {
    return blobCall(async () => {
      const names: string[] = [];
      for await (const blob of (await this.container()).listBlobsFlat({ prefix })) names.push(blob.name);
      return names;
    });
  }

  private async upload(
    name: string,
    text: string,
    conditions?: { ifNoneMatch: '*' } | { ifMatch: string },
  ): Promise<void> {
    const body = Buffer.from(text, 'utf8');
    await (await this.container()).getBlockBlobClient(name).uploadData(body, {
      // One Put Blob: a reader sees the whole blob or none of it.
      maxSingleShotSize: 256 * 1024 * 1024,
      ...(conditions ? { conditions } : {}),
      blobHTTPHeaders: { blobContentType: 'application/x-ndjson; charset=utf-8' },
    });
  }
}
