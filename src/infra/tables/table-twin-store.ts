import type { TableClient } from '@azure/data-tables';
import { applyMergePatch } from '../../provisioning/merge-patch.js';
import { TWIN_LIMITS, type DeviceTwin, type TwinStore } from '../../provisioning/twin.js';
import {
  DeviceNotFoundError,
  PreconditionFailedError,
  UnprocessableRequestError,
} from '../../shared/errors.js';
import { toStorageKey } from '../storage-keys.js';
import { lazyTable } from './lazy-table.js';
import { tableStatus as statusOf, translateTableError } from './table-errors.js';

const TWIN_ROW = 'twin';
const IDENTITY_ROW = 'identity';

interface TwinEntity {
  partitionKey: string;
  rowKey: string;
  desired: string;
  reported: string;
}

/**
 * Device twins of the local run, beside the table identity store (same table, row `twin` next to row
 * `identity`): a twin exists exactly when the identity does, as in IoT Hub.
 */
export class TableTwinStore implements TwinStore {
  private readonly table: () => Promise<TableClient>;

  constructor(client: TableClient, createTableIfMissing: boolean) {
    this.table = lazyTable(client, createTableIfMissing);
  }

  async get(deviceId: string): Promise<DeviceTwin | undefined> {
    const key = toStorageKey(deviceId);
    const client = await this.table();
    if (!(await exists(client, key, IDENTITY_ROW))) return undefined;
    const twin = await read(client, key);
    return twin
      ? toTwin(deviceId, twin.entity, twin.etag)
      : { deviceId, etag: '"0"', desired: {}, reported: {} };
  }

  async patchDesired(
    deviceId: string,
    patch: Record<string, unknown>,
    ifMatch?: string,
  ): Promise<DeviceTwin> {
    const key = toStorageKey(deviceId);
    const client = await this.table();
    if (!(await exists(client, key, IDENTITY_ROW))) throw new DeviceNotFoundError(deviceId);
    const current = await read(client, key);
    const currentEtag = current?.etag ?? '"0"';
    if (ifMatch !== undefined && ifMatch !== '*' && ifMatch !== currentEtag) {
      throw new PreconditionFailedError(`The twin of '${deviceId}' was changed since ETag ${ifMatch}.`);
    }
    const desired = applyMergePatch(current ? JSON.parse(current.entity.desired) : {}, patch) as Record<
      string,
      unknown
    >;
    const text = JSON.stringify(desired);
    if (Buffer.byteLength(text, 'utf8') > TWIN_LIMITS.desiredBytes) {
      throw new UnprocessableRequestError('The desired properties would exceed 32 KB.', [
        { path: 'desired', message: `at most ${TWIN_LIMITS.desiredBytes} bytes after the patch` },
      ]);
    }
    const entity: TwinEntity = {
      partitionKey: key,
      rowKey: TWIN_ROW,
      desired: text,
      reported: current?.entity.reported ?? '{}',
    };
    try {
      const result = current
        ? await client.updateEntity(entity, 'Replace', { etag: current.etag })
        : await client.createEntity(entity);
      return toTwin(deviceId, entity, result.etag ?? '');
    } catch (error) {
      if (statusOf(error) === 412 || statusOf(error) === 409) {
        throw new PreconditionFailedError(
          `The twin of '${deviceId}' changed concurrently; read it and retry.`,
        );
      }
      throw translateTableError(error);
    }
  }
}

async function exists(client: TableClient, key: string, row: string): Promise<boolean> {
  try {
    await client.getEntity(key, row, { queryOptions: { select: ['PartitionKey'] } });
    return true;
  } catch (error) {
    if (statusOf(error) === 404) return false;
    throw translateTableError(error);
  }
}

async function read(
  client: TableClient,
  key: string,
): Promise<{ entity: TwinEntity; etag: string } | undefined> {
  try {
    const entity = await client.getEntity<TwinEntity>(key, TWIN_ROW);
    return { entity, etag: entity.etag };
  } catch (error) {
    if (statusOf(error) === 404) return undefined;
    throw translateTableError(error);
  }
}

function toTwin(deviceId: string, entity: TwinEntity, etag: string): DeviceTwin {
  return {
    deviceId,
    etag,
    desired: JSON.parse(entity.desired) as Record<string, unknown>,
    reported: JSON.parse(entity.reported) as Record<string, unknown>,
  };
}
