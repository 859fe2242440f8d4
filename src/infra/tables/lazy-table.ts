import type { TableClient } from '@azure/data-tables';

/** A table handle whose table is created on first use when `create` is set (local runs); retried after a failure. */
export function lazyTable(client: TableClient, create: boolean): () => Promise<TableClient> {
  let ready: Promise<TableClient> | undefined;
  return () => {
    ready ??= (async () => {
      if (create) await client.createTable();
      return client;
    })().catch((error: unknown) => {
      ready = undefined;
      throw error;
    });
    return ready;
  };
}
