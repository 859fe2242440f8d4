import type { Container } from '@azure/cosmos';
import { randomUUID } from 'node:crypto';
import type { OrphanLog } from '../../provisioning/provisioning-service.js';
import type { OrphanRecord, OrphanRecords } from '../../provisioning/reconcile.js';
import { isNotFound, translateCosmosError } from './errors.js';

/**
 * Orphaned identities, one document each, in a `reconciliation` container (partition key `/id`). Throttling and
 * outages surface as ThrottledError / ServiceUnavailableError.
 */
export class CosmosOrphanLog implements OrphanLog, OrphanRecords {
  constructor(private readonly container: () => Promise<Container>) {}

  async record(orphan: { deviceId: string; reason: string; at: string }): Promise<void> {
    try {
      await (await this.container()).items.create({ id: randomUUID(), kind: 'orphan-identity', ...orphan });
    } catch (error) {
      throw translateCosmosError(error);
    }
  }

  /** Every recorded orphan, page by page (the container holds only these records). */
  async *list(): AsyncIterable<OrphanRecord> {
    try {
      const query = (await this.container()).items.query<OrphanRecord>(
        "SELECT c.id, c.deviceId, c.reason, c.at FROM c WHERE c.kind = 'orphan-identity'",
        { maxItemCount: 100 },
      );
      while (query.hasMoreResults()) {
        const page = await query.fetchNext();
        for (const record of page.resources) yield record;
      }
    } catch (error) {
      throw translateCosmosError(error);
    }
  }

  async remove(id: string): Promise<void> {
    try {
      await (await this.container()).item(id, id).delete();
    } catch (error) {
      if (!isNotFound(error)) throw translateCosmosError(error); // already removed: done
    }
  }
}
