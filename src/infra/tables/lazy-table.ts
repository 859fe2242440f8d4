import type { TableClient } from '@azure/data-tables';
import { onFirstUse } from '../lazy.js';
import { translateTableError } from '../storage/errors.js';

/**
 * A table handle whose table is created on first use when `create` is set (local runs). Failing to create it
 * is translated like any other Table storage call (an outage is ServiceUnavailableError).
 */
export function lazyTable(client: TableClient, create: boolean): () => Promise<TableClient> {
  return onFirstUse(async () => {
    try {
      if (create) await client.createTable();
    } catch (error) {
      throw translateTableError(error);
    }
    return client;
  });
}
