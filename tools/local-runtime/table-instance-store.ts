import type { TableClient, TransactionAction } from '@azure/data-tables';
import { lazyTable } from '../../src/infra/tables/lazy-table.js';
import { toStorageKey } from '../../src/infra/storage-keys.js';
import type { InstanceSnapshot, InstanceStore } from './durable-engine.js';

/** Table storage limits: 64 KiB per string property (32K UTF-16 units), 1 MiB and 255 properties per entity. */
const CHARS_PER_PROPERTY = 30_000;
const PROPERTIES_PER_ROW = 15;
const CHARS_PER_ROW = CHARS_PER_PROPERTY * PROPERTIES_PER_ROW;
/** An entity-group transaction holds at most 100 operations and 4 MiB; stay well below the size. */
const TRANSACTION_OPERATIONS = 100;
const TRANSACTION_CHARS = 1_000_000;
/** The row that says which version of the snapshot is the current one (written last). */
const HEAD = 'head';

interface PartEntity {
  partitionKey: string;
  rowKey: string;
  /** Head row: the current version, and how many rows it spans (0: the snapshot is inline in the head row). */
  version?: number;
  parts?: number;
  [property: `p${number}`]: string | undefined;
}

/**
 * Durable instances in Azure Table storage (Azurite locally): one partition per instance. A snapshot that fits
 * one row is written inline in the partition's head row (one atomic upsert); a larger one goes to rows of a new
 * version (`v<version>-<part>`, in one entity-group transaction when it fits) and the head row, naming that
 * version, is written last. A save that stops half-way leaves the previous version current, so restore()
 * always reads a whole snapshot; rows of other versions are removed afterwards.
 */
export class TableInstanceStore implements InstanceStore {
  private readonly table: () => Promise<TableClient>;
  /** The head each partition had after its last save or load: which version rows to remove next time. */
  private readonly heads = new Map<string, { version: number; parts: number }>();

  /** `log` hears of an instance whose rows cannot be read (it is skipped, so the other instances restore). */
  constructor(
    client: TableClient,
    private readonly log: (message: string) => void = () => undefined,
  ) {
    this.table = lazyTable(client, true);
  }

  async save(snapshot: InstanceSnapshot): Promise<void> {
    const table = await this.table();
    const partitionKey = toStorageKey(snapshot.instanceId);
    const json = JSON.stringify(snapshot);
    const previous = this.heads.get(partitionKey);
    if (json.length <= CHARS_PER_ROW) {
      await table.upsertEntity(
        { ...split(json), partitionKey, rowKey: HEAD, version: 0, parts: 0 },
        'Replace',
      );
      this.heads.set(partitionKey, { version: previous?.version ?? 0, parts: 0 });
    } else {
      const version = (previous?.version ?? 0) + 1;
      const rows: PartEntity[] = [];
      for (let row = 0; row * CHARS_PER_ROW < json.length; row++) {
        const text = json.slice(row * CHARS_PER_ROW, (row + 1) * CHARS_PER_ROW);
        rows.push({ ...split(text), partitionKey, rowKey: versionRow(version, row) });
      }
      const head: PartEntity = { partitionKey, rowKey: HEAD, version, parts: rows.length };
      if (rows.length + 1 <= TRANSACTION_OPERATIONS && json.length <= TRANSACTION_CHARS) {
        const actions = [...rows, head].map((entity): TransactionAction => [
          'upsert',
          { ...entity },
          'Replace',
        ]);
        await table.submitTransaction(actions);
      } else {
        for (const entity of rows) await table.upsertEntity(entity, 'Replace');
        await table.upsertEntity(head, 'Replace');
      }
      this.heads.set(partitionKey, { version, parts: rows.length });
    }
    // The rows of the version the head named before: no reader looks at them any more.
    for (let row = 0; previous && row < previous.parts; row++) {
      await table.deleteEntity(partitionKey, versionRow(previous.version, row)).catch(() => undefined);
    }
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
      let snapshot: InstanceSnapshot | undefined;
      try {
        const json = this.read(partitionKey, rowsOf);
        if (json) snapshot = JSON.parse(json) as InstanceSnapshot;
      } catch (error) {
        this.log(`durable store: skipping instance ${partitionKey}: ${String(error)}`);
        continue;
      }
      if (snapshot) snapshots.push(snapshot);
      // Rows the head does not name (a save that stopped half-way): remove them.
      const head = this.heads.get(partitionKey);
      if (!rowsOf.has(HEAD) || !head) continue;
      for (const key of rowsOf.keys()) {
        if (key !== HEAD && !isRowOf(key, head.version, head.parts)) {
          await table.deleteEntity(partitionKey, key).catch(() => undefined);
        }
      }
    }
    return snapshots;
  }

  /** The snapshot JSON the head row names ('' when there is none, e.g. a first save that never finished). */
  private read(partitionKey: string, rowsOf: Map<string, PartEntity>): string {
    const head = rowsOf.get(HEAD);
    if (!head) return legacy(rowsOf);
    const version = head.version ?? 0;
    const parts = head.parts ?? 0;
    this.heads.set(partitionKey, { version, parts });
    if (parts === 0) return join(head);
    let json = '';
    for (let row = 0; row < parts; row++) {
      const entity = rowsOf.get(versionRow(version, row));
      if (!entity)
        throw new Error(`durable store: instance ${partitionKey} lacks row ${row} of version ${version}`);
      json += join(entity);
    }
    return json;
  }

  async delete(instanceId: string): Promise<void> {
    const table = await this.table();
    const partitionKey = toStorageKey(instanceId);
    const keys: string[] = [];
    for await (const entity of table.listEntities<PartEntity>({
      queryOptions: { filter: `PartitionKey eq '${partitionKey.replaceAll("'", "''")}'` },
    })) {
      keys.push(entity.rowKey);
    }
    // The head last: until it goes, the instance is whole.
    for (const key of keys.sort((a, b) => Number(a === HEAD) - Number(b === HEAD))) {
      await table.deleteEntity(partitionKey, key);
    }
    this.heads.delete(partitionKey);
  }
}

const versionRow = (version: number, row: number) =>
  `v${String(version).padStart(10, '0')}-${String(row).padStart(4, '0')}`;

const isRowOf = (key: string, version: number, parts: number) =>
  Array.from({ length: parts }, (_, row) => versionRow(version, row)).includes(key);

/** Text in properties p0, p1, … of at most 30,000 characters each. */
function split(text: string): Record<`p${number}`, string> {
  const properties: Record<`p${number}`, string> = {};
  for (let p = 0; p * CHARS_PER_PROPERTY < text.length; p++) {
    properties[`p${p}`] = text.slice(p * CHARS_PER_PROPERTY, (p + 1) * CHARS_PER_PROPERTY);
  }
  return properties;
}

function join(entity: PartEntity): string {
  let text = '';
  for (let p = 0; entity[`p${p}`] !== undefined; p++) text += entity[`p${p}`] ?? '';
  return text;
}

/** Rows `part-0000`… of the layout before versions (row 0 holding `parts`), read once and then replaced. */
function legacy(rowsOf: Map<string, PartEntity>): string {
  const parts = rowsOf.get('part-0000')?.parts ?? 0;
  let json = '';
  for (let row = 0; row < parts; row++) {
    const entity = rowsOf.get(`part-${String(row).padStart(4, '0')}`);
    if (!entity) return '';
    json += join(entity);
  }
  return json;
}
