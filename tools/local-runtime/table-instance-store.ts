import type { TableClient } from '@azure/data-tables';
import { lazyTable } from '../../src/infra/tables/lazy-table.js';
import { toStorageKey } from '../../src/infra/storage-keys.js';
import type { InstanceSnapshot, InstanceStore } from './durable-engine.js';

/** Table storage limits: 64 KiB per string property (32K UTF-16 units), 1 MiB and 255 properties per entity. */
const CHARS_PER_PROPERTY = 30_000;
const PROPERTIES_PER_ROW = 15;
const CHARS_PER_ROW = CHARS_PER_PROPERTY * PROPERTIES_PER_ROW;

interface PartEntity {
  partitionKey: string;
  rowKey: string;
  parts?: number;
  [property: `p${number}`]: string | undefined;
}

/**
 * Durable instances in Azure Table storage (Azurite locally): one partition per instance, its snapshot (history
 * included) as JSON split over as many rows of up to 15 × 30,000-character properties as it needs.
 */
export class TableInstanceStore implements InstanceStore {
  private readonly table: () => Promise<TableClient>;
  private readonly rowsWritten = new Map<string, number>();

  constructor(client: TableClient) {
    this.table = lazyTable(client, true);
  }

  async save(snapshot: InstanceSnapshot): Promise<void> {
    const table = await this.table();
    const partitionKey = toStorageKey(snapshot.instanceId);
    const json = JSON.stringify(snapshot);
    const rows = Math.max(1, Math.ceil(json.length / CHARS_PER_ROW));
    for (let row = 0; row < rows; row++) {
      const entity: PartEntity = { partitionKey, rowKey: rowKey(row), ...(row === 0 ? { parts: rows } : {}) };
      const text = json.slice(row * CHARS_PER_ROW, (row + 1) * CHARS_PER_ROW);
      for (let p = 0; p * CHARS_PER_PROPERTY < text.length; p++) {
        entity[`p${p}`] = text.slice(p * CHARS_PER_PROPERTY, (p + 1) * CHARS_PER_PROPERTY);
      }
      await table.upsertEntity(entity, 'Replace');
    }
    // Rows a larger earlier snapshot left behind; row 0's `parts` already tells readers to ignore them.
    for (let row = rows; row < (this.rowsWritten.get(partitionKey) ?? 0); row++) {
      await table.deleteEntity(partitionKey, rowKey(row)).catch(() => undefined);
    }
    this.rowsWritten.set(partitionKey, rows);
  }

  async loadAll(): Promise<InstanceSnapshot[]> {
    const table = await this.table();
    const byInstance = new Map<string, Map<string, PartEntity>>();
    for await (const entity of table.listEntities<PartEntity>()) {
      const rowsOf = byInstance.get(entity.partitionKey) ?? new Map<string, PartEntity>();
      rowsOf.set(entity.rowKey, entity);
      byInstance.set(entity.partitionKey, rowsOf);
    }
    const snapshots: InstanceSnapshot[] = [];
    for (const [partitionKey, rowsOf] of byInstance) {
      const parts = rowsOf.get(rowKey(0))?.parts ?? 0;
      let json = '';
      for (let row = 0; row < parts; row++) {
        const entity = rowsOf.get(rowKey(row));
        for (let p = 0; entity?.[`p${p}`] !== undefined; p++) json += entity[`p${p}`] ?? '';
      }
      this.rowsWritten.set(partitionKey, rowsOf.size);
      if (json) snapshots.push(JSON.parse(json) as InstanceSnapshot);
    }
    return snapshots;
  }

  async delete(instanceId: string): Promise<void> {
    const table = await this.table();
    const partitionKey = toStorageKey(instanceId);
    for await (const entity of table.listEntities<PartEntity>({
      queryOptions: { filter: `PartitionKey eq '${partitionKey.replaceAll("'", "''")}'` },
    })) {
      await table.deleteEntity(partitionKey, entity.rowKey);
    }
    this.rowsWritten.delete(partitionKey);
  }
}

const rowKey = (row: number) => `part-${String(row).padStart(4, '0')}`;
