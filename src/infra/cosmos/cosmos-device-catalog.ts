import type { Container, SqlParameter } from '@azure/cosmos';
import {
  QUERYABLE_FIELD,
  type DevicePage,
  type DeviceQuery,
  type DeviceRecord,
  type DeviceCatalog,
  type VersionedDeviceRecord,
} from '../../provisioning/catalog.js';
import { DeviceAlreadyExistsError, DeviceNotFoundError, ValidationError } from '../../shared/errors.js';
import { toStorageKey } from '../storage-keys.js';
import { isConflict, isNotFound, translateCosmosError } from './errors.js';
import { fetchPage } from './cosmos-paging.js';

interface StoredRecord extends DeviceRecord {
  /** The device id as stored (ids with `/ \ ? #` are percent-encoded); `deviceId` keeps it as given. */
  deviceId: string;
  _etag?: string;
}

/**
 * DeviceCatalog on a Cosmos DB container (`devices`, partition key `/id`). Throttling and outages surface as
 * ThrottledError / ServiceUnavailableError (HTTP 503 with Retry-After); a write whose `ifMatch` no longer holds
 * as ConcurrentUpdateError (the caller decides whether that ETag was a client's: see clientPrecondition).
 */
export class CosmosDeviceCatalog implements DeviceCatalog {
  constructor(private readonly container: () => Promise<Container>) {}

  async create(record: DeviceRecord): Promise<VersionedDeviceRecord> {
    try {
      const { resource } = await (await this.container()).items.create<StoredRecord>(toStored(record));
      return fromStored(resource);
    } catch (error) {
      if (isConflict(error)) throw new DeviceAlreadyExistsError(record.id);
      throw translateCosmosError(error);
    }
  }

  async get(id: string): Promise<VersionedDeviceRecord | undefined> {
    const key = toStorageKey(id);
    try {
      const { resource } = await (await this.container()).item(key, key).read<StoredRecord>();
      return resource ? fromStored(resource) : undefined;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw translateCosmosError(error);
    }
  }

  async replace(record: DeviceRecord, ifMatch?: string): Promise<VersionedDeviceRecord> {
    const key = toStorageKey(record.id);
    try {
      const { resource } = await (
        await this.container()
      )
        .item(key, key)
        .replace<StoredRecord>(
          toStored(record),
          ifMatch === undefined ? {} : { accessCondition: { type: 'IfMatch', condition: ifMatch } },
        );
      if (!resource) throw new DeviceNotFoundError(record.id);
      return fromStored(resource);
    } catch (error) {
      if (isNotFound(error)) throw new DeviceNotFoundError(record.id);
      throw translateCosmosError(error, `Device '${record.id}'`);
    }
  }

  async delete(id: string, ifMatch?: string): Promise<boolean> {
    const key = toStorageKey(id);
    try {
      await (
        await this.container()
      )
        .item(key, key)
        .delete(ifMatch === undefined ? {} : { accessCondition: { type: 'IfMatch', condition: ifMatch } });
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw translateCosmosError(error, `Device '${id}'`);
    }
  }

  async query(query: DeviceQuery): Promise<DevicePage> {
    const { text, parameters } = buildQuery(query);
    try {
      const page = await fetchPage<StoredRecord>(await this.container(), { query: text, parameters }, query);
      const result: DevicePage = { items: page.items.map(fromStored) };
      if (page.continuationToken) result.continuationToken = page.continuationToken;
      return result;
    } catch (error) {
      throw translateCosmosError(error);
    }
  }
}

/**
 * SQL from validated parameters only: field names must match QUERYABLE_FIELD (so quoting them is safe) and
 * every value is a parameter. Clients never send query text.
 */
export function buildQuery(query: DeviceQuery): { text: string; parameters: SqlParameter[] } {
  const conditions: string[] = [];
  const parameters: SqlParameter[] = [];
  if (query.status !== undefined) {
    conditions.push('c.status = @status');
    parameters.push({ name: '@status', value: query.status });
  }
  if (query.creationToken !== undefined) {
    conditions.push('c.creationToken = @creationToken');
    parameters.push({ name: '@creationToken', value: query.creationToken });
  }
  Object.entries(query.metadata ?? {}).forEach(([field, value], i) => {
    if (!QUERYABLE_FIELD.test(field)) {
      throw new ValidationError('Invalid metadata filter.', [
        { path: `metadata.${field}`, message: 'field names must be identifiers (letters, digits, _)' },
      ]);
    }
    conditions.push(`c.metadata["${field}"] = @m${i}`);
    parameters.push({ name: `@m${i}`, value });
  });
  const where = conditions.length > 0 ? ` WHERE ${conditions.join(' AND ')}` : '';
  return { text: `SELECT * FROM c${where} ORDER BY c.id`, parameters };
}

function toStored(record: DeviceRecord): StoredRecord {
  return {
    id: toStorageKey(record.id),
    deviceId: record.id,
    status: record.status,
    metadata: record.metadata,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
    ...(record.creationToken === undefined ? {} : { creationToken: record.creationToken }),
  };
}

function fromStored(stored: StoredRecord | undefined): VersionedDeviceRecord {
  if (!stored) throw new Error('Cosmos DB returned no document.');
  return {
    id: stored.deviceId,
    status: stored.status,
    metadata: stored.metadata,
    createdAt: stored.createdAt,
    updatedAt: stored.updatedAt,
    ...(typeof stored.creationToken === 'string' ? { creationToken: stored.creationToken } : {}),
    etag: stored._etag ?? '',
  };
}
