import type { Container } from '@azure/cosmos';
import type { JobRecord, JobStore } from '../../jobs/ports.js';
import { JobNotFoundError, PreconditionFailedError } from '../../shared/errors.js';
import { cosmosStatus, translateCosmosError } from './cosmos-client.js';
import { fetchPage } from './cosmos-paging.js';

type StoredJob = JobRecord & { _etag?: string };

const MAX_ATTEMPTS = 5;

/**
 * JobStore in a Cosmos DB container partitioned by `/id` (job ids are server-generated and URL-safe).
 * Throttling and outages surface as ThrottledError / ServiceUnavailableError (HTTP 503 with Retry-After).
 */
export class CosmosJobStore implements JobStore {
  constructor(private readonly container: () => Promise<Container>) {}

  async create(record: JobRecord): Promise<void> {
    await this.call((c) => c.items.create(record));
  }

  async get(id: string): Promise<JobRecord | undefined> {
    const stored = await this.read(id);
    return stored ? strip(stored) : undefined;
  }

  async list(query: { top: number; continuationToken?: string }) {
    const page = await this.call((c) =>
      fetchPage<StoredJob>(c, 'SELECT * FROM c ORDER BY c.createdAt DESC', query),
    );
    return { ...page, items: page.items.map(strip) };
  }

  async update(id: string, change: (record: JobRecord) => JobRecord): Promise<JobRecord> {
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const current = await this.read(id);
      if (!current) throw new JobNotFoundError(id);
      const next = change(strip(current));
      const etag = current._etag;
      const replaced = await this.call(async (c) => {
        try {
          await c
            .item(id, id)
            .replace(next, etag ? { accessCondition: { type: 'IfMatch', condition: etag } } : {});
          return true;
        } catch (error) {
          if (cosmosStatus(error) === 412) return false;
          throw error;
        }
      });
      if (replaced) return next;
    }
    throw new PreconditionFailedError(`Job '${id}' kept changing concurrently.`);
  }

  private read(id: string): Promise<StoredJob | undefined> {
    return this.call(async (c) => {
      try {
        const { resource } = await c.item(id, id).read<StoredJob>();
        return resource;
      } catch (error) {
        if (cosmosStatus(error) === 404) return undefined;
        throw error;
      }
    });
  }

  /** Runs one Cosmos DB operation; 429/503/timeouts become domain errors. */
  private async call<T>(operation: (container: Container) => Promise<T>): Promise<T> {
    try {
      return await operation(await this.container());
    } catch (error) {
      throw translateCosmosError(error);
    }
  }
}

function strip(stored: StoredJob): JobRecord {
  const record = { ...stored } as StoredJob & Record<string, unknown>;
  for (const key of ['_etag', '_rid', '_self', '_attachments', '_ts']) Reflect.deleteProperty(record, key);
  return record;
}
