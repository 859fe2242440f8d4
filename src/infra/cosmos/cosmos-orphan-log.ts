import type { Container } from '@azure/cosmos';
import { randomUUID } from 'node:crypto';
import type { OrphanLog } from '../../provisioning/provisioning-service.js';
import { translateCosmosError } from './cosmos-client.js';

/**
 * Orphaned identities, one document each, in a `reconciliation` container (partition key `/id`). Throttling and
 * outages surface as ThrottledError / ServiceUnavailableError.
 */
export class CosmosOrphanLog implements OrphanLog {
  constructor(private readonly container: () => Promise<Container>) {}

  async record(orphan: { deviceId: string; reason: string; at: string }): Promise<void> {
    try {
      await (await this.container()).items.create({ id: randomUUID(), kind: 'orphan-identity', ...orphan });
    } catch (error) {
      throw translateCosmosError(error);
    }
  }
}
