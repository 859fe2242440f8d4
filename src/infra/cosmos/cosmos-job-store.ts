import type { Container } from '@azure/cosmos';
import type { JobRecord, JobStore } from '../../jobs/ports.js';
import { JobNotFoundError, PreconditionFailedError } from '../../shared/errors.js';
import { cosmosStatus } from './cosmos-client.js';
import { fetchPage } from './cosmos-paging.js';

type StoredJob = JobRecord & { _etag?: string };

const MAX_ATTEMPTS = 5;

/** JobStore in a Cosmos DB container partitioned by `/id` (job ids are server-generated and URL-safe). */
export class CosmosJobStore implements JobStore {
  constructor(private readonly container: () => Promise<Container>) {}

  async create(record: JobRecord): Promise<void> {
    await (await this.container()).items.create(record);
  }

  async get(id: string): Promise<JobRecord | undefined> {
    const stored = await this.read(id);
    return stored ? strip(stored) : undefined;
  }

  async list(query: { top: number; continuationToken?: string }) {
    const page = await fetchPage<StoredJob>(
      await this.container(),
      'SELECT * FROM c ORDER BY c.createdAt DESC',
      query,
    );
    return { ...page, items: page.items.map(strip) };
  }

  async update(id: string, change: (record: JobRecord) => JobRecord): Promise<JobRecord> {
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const current = await this.read(id);
      if (!current) throw new JobNotFoundError(id);
      const next = change(strip(current));
      try {
        await (
          await this.container()
        )
          .item(id, id)
          .replace(
            next,
            current._etag ? { accessCondition: { type: 'IfMatch', condition: current._etag } } : {},
          );
        return next;
      } catch (error) {
        if (cosmosStatus(error) !== 412) throw error;
      }
    }
    throw new PreconditionFailedError(`Job '${id}' kept changing concurrently.`);
  }

  private async read(id: string): Promise<StoredJob | undefined> {
    try {
      const { resource } = await (await this.container()).item(id, id).read<StoredJob>();
      return resource;
    } catch (error) {
      if (cosmosStatus(error) === 404) return undefined;
      throw error;
    }
  }
}

function strip(stored: StoredJob): JobRecord {
  const record = { ...stored } as StoredJob & Record<string, unknown>;
  for (const key of ['_etag', '_rid', '_self', '_attachments', '_ts']) Reflect.deleteProperty(record, key);
  return record;
}
