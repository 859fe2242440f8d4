import type { TableClient } from '@azure/data-tables';
import { applyMergePatch } from '../../provisioning/merge-patch.js';
import { TWIN_LIMITS, type DeviceTwin, type TwinStore } from '../../provisioning/twin.js';
import {
  ConcurrentUpdateError,
  DeviceNotFoundError,
  PreconditionFailedError,
  UnprocessableRequestError,
} from '../../shared/errors.js';
import { clientPrecondition, optimisticUpdate } from '../../shared/optimistic-update.js';
import { toStorageKey } from '../storage-keys.js';
import { lazyTable } from './lazy-table.js';
import { isConflict, isNotFound, translateTableError } from '../storage/errors.js';

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

  /**
   * Read → merge → conditional write on the twin row's ETag. With the client's `ifMatch` (not `*`) one attempt,
   * and a stale ETag is PreconditionFailedError (412); without it a race lost to another patch is re-read and
   * re-merged (optimisticUpdate), so concurrent patches of different keys all land.
   */
  async patchDesired(
    deviceId: string,
    patch: Record<string, unknown>,
    ifMatch?: string,
  ): Promise<DeviceTwin> {
    const key = toStorageKey(deviceId);
    const client = await this.table();
    if (!(await exists(client, key, IDENTITY_ROW))) throw new DeviceNotFoundError(deviceId);
    const what = `The twin of '${deviceId}'`;
    const clientEtag = ifMatch === '*' ? undefined : ifMatch;
    const attempt = async (): Promise<DeviceTwin> => {
      const current = await read(client, key);
      if (clientEtag !== undefined && clientEtag !== (current?.etag ?? '"0"')) {
        throw new PreconditionFailedError(`${what} was changed since ETag ${clientEtag}.`);
      }
      const entity = patched(key, current?.entity, patch);
      try {
        const result = current
          ? await client.updateEntity(entity, 'Replace', { etag: current.etag })
          : await client.createEntity(entity);
        return toTwin(deviceId, entity, result.etag ?? '');
      } catch (error) {
        // A first patch that lost the create to another one (409) is a lost race like a stale ETag (412).
        if (isConflict(error)) throw new ConcurrentUpdateError(`${what} was created concurrently.`);
        throw translateTableError(error, what);
      }
    };
    if (clientEtag === undefined) return optimisticUpdate(what, attempt);
    return attempt().catch((error: unknown) => {
      throw clientPrecondition(error, clientEtag, what);
    });
  }
}

/** The twin row after merging `patch` into its desired properties; 422 when they would exceed IoT Hub's 32 KB. */
function patched(key: string, current: TwinEntity | undefined, patch: Record<string, unknown>): TwinEntity {
  const desired = applyMergePatch(current ? JSON.parse(current.desired) : {}, patch) as Record<
    string,
    unknown
  >;
  const text = JSON.stringify(desired);
  if (Buffer.byteLength(text, 'utf8') > TWIN_LIMITS.desiredBytes) {
    throw new UnprocessableRequestError('The desired properties would exceed 32 KB.', [
      { path: 'desired', message: `at most ${TWIN_LIMITS.desiredBytes} bytes after the patch` },
    ]);
  }
  return { partitionKey: key, rowKey: TWIN_ROW, desired: text, reported: current?.reported ?? '{}' };
}

async function exists(client: TableClient, key: string, row: string): Promise<boolean> {
  try {
    await client.getEntity(key, row, { queryOptions: { select: ['PartitionKey'] } });
    return true;
  } catch (error) {
    if (isNotFound(error)) return false;
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
    if (isNotFound(error)) return undefined;
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
