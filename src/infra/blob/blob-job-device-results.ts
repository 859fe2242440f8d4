import type { BlobServiceClient, ContainerClient } from '@azure/storage-blob';
import type { DeviceJobResult, JobDeviceResultStore } from '../../jobs/ports.js';
import { ValidationError } from '../../shared/errors.js';
import { isNotFound } from '../storage/errors.js';
import { blobCall, lazyBlobContainer } from './blob-service.js';

/** Batch numbers are zero-padded in blob names so that listing order is batch order. */
const BATCH_DIGITS = 6;
const BATCH_NAME = /\/b(\d{6})\.jsonl$/;
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{1,200}$/;

const invalidToken = () =>
  new ValidationError('Invalid continuation token.', [
    { path: 'continuationToken', message: 'is not a token this API returned' },
  ]);

/**
 * JobDeviceResultStore in a private blob container: one JSON-lines blob per run and IoT Hub job batch,
 * `{jobId}/r{run}/b{batch}.jsonl`. One Put Blob per batch (a 10,000-device batch is one write, where Cosmos DB
 * would take 10,000 item writes); pages are read in order, the token naming the batch and line to go on from.
 */
export class BlobJobDeviceResults implements JobDeviceResultStore {
  private readonly container: () => Promise<ContainerClient>;

  constructor(service: BlobServiceClient, containerName: string, createIfMissing: boolean) {
    this.container = lazyBlobContainer(service, containerName, createIfMissing);
  }

  save(jobId: string, run: number, batch: number, results: readonly DeviceJobResult[]): Promise<void> {
    return blobCall(async () => {
      if (results.length === 0) return;
      const lines: string[] = [];
      for (const result of results) lines.push(JSON.stringify(result));
      const body = Buffer.from(lines.join('\n') + '\n', 'utf8');
      await (await this.container()).getBlockBlobClient(blobName(jobId, run, batch)).uploadData(body, {
        // One Put Blob: a reader sees the whole batch or none of it.
        maxSingleShotSize: 256 * 1024 * 1024,
        blobHTTPHeaders: { blobContentType: 'application/x-ndjson; charset=utf-8' },
      });
    });
  }

  forget(jobId: string, run: number): Promise<void> {
    return blobCall(async () => {
      const container = await this.container();
      for await (const blob of container.listBlobsFlat({ prefix: `${jobId}/r${String(run)}/` })) {
        await container.deleteBlob(blob.name).catch((error: unknown) => {
          if (!isNotFound(error)) throw error;
        });
      }
    });
  }

  page(
    jobId: string,
    run: number,
    query: { top: number; status?: DeviceJobResult['status']; continuationToken?: string },
  ): Promise<{ items: DeviceJobResult[]; continuationToken?: string }> {
    return blobCall(async () => {
      const from =
        query.continuationToken === undefined ? { b: 0, l: 0 } : parseToken(query.continuationToken);
      const container = await this.container();
      const items: DeviceJobResult[] = [];
      for await (const blob of container.listBlobsFlat({ prefix: `${jobId}/r${String(run)}/` })) {
        const batch = Number(BATCH_NAME.exec(blob.name)?.[1] ?? -1);
        if (batch < from.b) continue;
        const lines = await readLines(container, blob.name);
        for (let line = batch === from.b ? from.l : 0; line < lines.length; line++) {
          if (items.length === query.top) return { items, continuationToken: token(batch, line) };
          const result = JSON.parse(lines[line] ?? '') as DeviceJobResult;
          if (query.status === undefined || result.status === query.status) items.push(result);
        }
      }
      return { items };
    });
  }
}

const blobName = (jobId: string, run: number, batch: number) =>
  `${jobId}/r${String(run)}/b${String(batch).padStart(BATCH_DIGITS, '0')}.jsonl`;

async function readLines(container: ContainerClient, name: string): Promise<string[]> {
  try {
    const text = (await container.getBlockBlobClient(name).downloadToBuffer()).toString('utf8');
    return text.split('\n').filter((line) => line.length > 0);
  } catch (error) {
    // Listed, then gone: nothing to read.
    if (isNotFound(error)) return [];
    throw error;
  }
}

const token = (b: number, l: number) => Buffer.from(JSON.stringify({ b, l })).toString('base64url');

function parseToken(text: string): { b: number; l: number } {
  if (!TOKEN_SHAPE.test(text)) throw invalidToken();
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    throw invalidToken();
  }
  const { b, l } = (typeof value === 'object' && value !== null ? value : {}) as { b?: unknown; l?: unknown };
  if (!Number.isSafeInteger(b) || !Number.isSafeInteger(l) || (b as number) < 0 || (l as number) < 0) {
    throw invalidToken();
  }
  return { b: b as number, l: l as number };
}
