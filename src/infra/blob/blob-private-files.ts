import type { BlobServiceClient, ContainerClient } from '@azure/storage-blob';
import type { PrivateFiles } from '../../provisioning/ports.js';
import { blobStatus, lazyBlobContainer } from './blob-service.js';

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

  async writeOnce(name: string, text: string): Promise<string> {
    try {
      await this.upload(name, text, { ifNoneMatch: '*' });
      return text;
    } catch (error) {
      const status = blobStatus(error);
      if (status !== 409 && status !== 412) throw error;
      const stored = await this.read(name);
      if (stored === undefined) throw error;
      return stored;
    }
  }

  async write(name: string, text: string): Promise<void> {
    await this.upload(name, text);
  }

  async read(name: string): Promise<string | undefined> {
    try {
      const buffer = await (await this.container()).getBlockBlobClient(name).downloadToBuffer();
      return buffer.toString('utf8');
    } catch (error) {
      if (blobStatus(error) === 404) return undefined;
      throw error;
    }
  }

  async readVersioned(name: string): Promise<{ text: string; etag: string } | undefined> {
    try {
      const blob = (await this.container()).getBlockBlobClient(name);
      const response = await blob.download();
      const text = (await streamText(response.readableStreamBody)) ?? '';
      return { text, etag: response.etag ?? '' };
    } catch (error) {
      if (blobStatus(error) === 404) return undefined;
      throw error;
    }
  }

  async replaceIfUnchanged(name: string, text: string, etag: string): Promise<boolean> {
    try {
      await this.upload(name, text, { ifMatch: etag });
      return true;
    } catch (error) {
      const status = blobStatus(error);
      if (status === 412 || status === 404) return false;
      throw error;
    }
  }

  async deletePrefix(prefix: string): Promise<void> {
    const container = await this.container();
    for await (const blob of container.listBlobsFlat({ prefix })) {
      await container.deleteBlob(blob.name).catch((error: unknown) => {
        if (blobStatus(error) !== 404) throw error;
      });
    }
  }

  async list(prefix: string): Promise<string[]> {
    const names: string[] = [];
    for await (const blob of (await this.container()).listBlobsFlat({ prefix })) names.push(blob.name);
    return names;
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
