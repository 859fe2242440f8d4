import type { TableClient } from '@azure/data-tables';
import { onFirstUse } from '../lazy.js';

/** A table handle whose table is created on first use when `create` is set (local runs). */
export function lazyTable(client: TableClient, create: boolean): () => Promise<TableClient> {
  return onFirstUse(async () => {
    if (create) await client.createTable();
    return client;
  });
}
