import type { Container } from '@azure/cosmos';
import type { ScheduledJobRecord, ScheduledJobStore } from '../../jobs/ports.js';
import { JobNotFoundError } from '../../shared/errors.js';
import { optimisticUpdate } from '../../shared/optimistic-update.js';
import { isNotFound, translateCosmosError } from './errors.js';
import { fetchPage } from './cosmos-paging.js';

type StoredJob = ScheduledJobRecord & { _etag?: string };

/**
 * ScheduledJobStore in a Cosmos DB container partitioned by `/id` (job ids are server-generated and URL-safe).
 * Throttling, outages and updates that kept losing races surface as ThrottledError / ServiceUnavailableError /
 * ConcurrentUpdateError (HTTP 503 with Retry-After).
 */
export class CosmosScheduledJobStore implements ScheduledJobStore {
  constructor(private readonly container: () => Promise<Container>) {}

  async create(record: ScheduledJobRecord): Promise<void> {
    await this.call((c) => c.items.create(record));
  }

  async get(id: string): Promise<ScheduledJobRecord | undefined> {
    const stored = await this.read(id);
    return stored ? strip(stored) : undefined;
  }

  async list(query: { top: number; continuationToken?: string }) {
    const page = await this.call((c) =>
      fetchPage<StoredJob>(c, 'SELECT * FROM c ORDER BY c.createdAt DESC', query),
    );
    return { ...page, items: page.items.map(strip) };
  }

  /** Read, change, replace under the ETag read; a race lost to another writer is re-read and re-applied. */
  update(
    id: string,
    change: (record: ScheduledJobRecord) => ScheduledJobRecord,
  ): Promise<ScheduledJobRecord> {
    return optimisticUpdate(`Job '${id}'`, async () => {
      const current = await this.read(id);
      if (!current) throw new JobNotFoundError(id);
      const next = change(strip(current));
      const etag = current._etag;
      await this.call(
        (c) =>
          c.item(id, id).replace(next, etag ? { accessCondition: { type: 'IfMatch', condition: etag } } : {}),
        `Job '${id}'`,
      );
      return next;
    });
  }

  private read(id: string): Promise<StoredJob | undefined> {
    return this.call(async (c) => {
      try {
        const { resource } = await c.item(id, id).read<StoredJob>();
        return resource;
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    });
  }

  /** Runs one Cosmos DB operation; 429/503/timeouts and a lost race (412 on `what`) become domain errors. */
  private async call<T>(operation: (container: Container) => Promise<T>, what?: string): Promise<T> {
    try {
      return await operation(await this.container());
    } catch (error) {
      throw translateCosmosError(error, what);
    }
  }
}

function strip(stored: StoredJob): ScheduledJobRecord {
  const record = { ...stored } as StoredJob & Record<string, unknown>;
  for (const key of ['_etag', '_rid', '_self', '_attachments', '_ts']) Reflect.deleteProperty(record, key);
  return record;
}
