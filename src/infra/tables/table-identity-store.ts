import { odata, type TableClient } from '@azure/data-tables';
import pLimit from 'p-limit';
import { keysOrNew, type SymmetricKeys } from '../../provisioning/keys.js';
import {
  MAX_BULK_DEVICES,
  newIdentity,
  type BulkOutcome,
  type DeviceIdentity,
  type IdentityStatus,
  type IdentityStore,
} from '../../provisioning/ports.js';
import type { IdentityListing } from '../../provisioning/reconcile.js';
import { authenticateDevice, type DeviceAuthentication } from '../../provisioning/sas-token.js';
import {
  CredentialsResetConflictError,
  DeviceAlreadyExistsError,
  DeviceNotFoundError,
  DomainError,
  ValidationError,
} from '../../shared/errors.js';
import { optimisticUpdate } from '../../shared/optimistic-update.js';
import type { AesGcmCipher } from '../crypto/aes-gcm-cipher.js';
import { toStorageKey } from '../storage-keys.js';
import { lazyTable } from './lazy-table.js';
import { isConflict, isNotFound, translateTableError as translate } from '../storage/errors.js';

const ROW = 'identity';

interface IdentityEntity {
  partitionKey: string;
  rowKey: string;
  deviceId: string;
  status: IdentityStatus;
  /** Both keys, AES-GCM encrypted with the device id as associated data. */
  keys: string;
  createdAt: string;
  updatedAt: string;
}

/**
 * The "custom identity store" of seed 002 §3.2 on Azure Table storage, used by the embedded local run: unique
 * ids, enabled/disabled status, keys encrypted at rest, and IoT Hub-style SAS token verification so that a
 * disabled or deleted device is refused at once.
 */
export class TableIdentityStore implements IdentityStore, IdentityListing {
  private readonly bulkLimit = pLimit(10);
  private readonly client: () => Promise<TableClient>;

  constructor(
    table: TableClient,
    private readonly cipher: AesGcmCipher,
    private readonly options: { createTableIfMissing: boolean; now?: () => Date },
  ) {
    this.client = lazyTable(table, options.createTableIfMissing);
  }

  async create(
    deviceId: string,
    keys?: SymmetricKeys,
    status: IdentityStatus = 'enabled',
  ): Promise<DeviceIdentity> {
    const identity = newIdentity(deviceId, keys, status);
    const now = this.now();
    try {
      await (
        await this.client()
      ).createEntity<IdentityEntity>({
        partitionKey: toStorageKey(deviceId),
        rowKey: ROW,
        deviceId,
        status: identity.status,
        keys: this.seal(deviceId, identity.keys),
        createdAt: now,
        updatedAt: now,
      });
    } catch (error) {
      if (isConflict(error)) throw new DeviceAlreadyExistsError(deviceId);
      throw translate(error);
    }
    return identity;
  }

  async get(deviceId: string): Promise<DeviceIdentity | undefined> {
    const entity = await this.read(deviceId);
    return entity && this.toIdentity(entity.value);
  }

  setStatus(deviceId: string, status: IdentityStatus): Promise<DeviceIdentity> {
    return this.update(deviceId, (entity) => ({ ...entity, status }));
  }

  regenerateKeys(deviceId: string, keys?: SymmetricKeys): Promise<DeviceIdentity> {
    const fresh = keysOrNew(keys);
    // Serialized on the ETag: a reset that lost the race to another reset is refused, not re-applied on top
    // (re-applying would hand out keys the winner's write had already replaced).
    return this.update(
      deviceId,
      (entity) => ({ ...entity, keys: this.seal(deviceId, fresh) }),
      (first, current) => first.keys !== current.keys,
    );
  }

  async delete(deviceId: string): Promise<boolean> {
    try {
      const client = await this.client();
      await client.deleteEntity(toStorageKey(deviceId), ROW);
      // The twin lives and dies with the identity, as in IoT Hub.
      await client.deleteEntity(toStorageKey(deviceId), 'twin').catch((error: unknown) => {
        if (!isNotFound(error)) throw error;
      });
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw translate(error);
    }
  }

  createMany(devices: readonly { deviceId: string; keys?: SymmetricKeys }[]): Promise<BulkOutcome[]> {
    return this.bulk(
      devices.map((d) => d.deviceId),
      async (i) => {
        const device = devices[i];
        if (!device) throw new Error('unreachable');
        return this.create(device.deviceId, device.keys);
      },
    );
  }

  deleteMany(deviceIds: readonly string[]): Promise<BulkOutcome[]> {
    return this.bulk(deviceIds, async (i) => {
      const deviceId = deviceIds[i] ?? '';
      if (!(await this.delete(deviceId))) throw new DeviceNotFoundError(deviceId);
      return undefined;
    });
  }

  /**
   * Checks a device's SAS token (`Authorization` of the device HTTPS API) against its current keys and status,
   * with the one device authenticator (`authenticateDevice`): the token must cover `{hostName}/devices/{id}`.
   */
  authenticate(deviceId: string, token: string, hostName: string): Promise<DeviceAuthentication> {
    const nowSeconds = Math.floor((this.options.now?.() ?? new Date()).getTime() / 1000);
    return authenticateDevice(token, { hostName, deviceId, nowSeconds }, (id) => this.get(id));
  }

  private async bulk(
    deviceIds: readonly string[],
    run: (index: number) => Promise<DeviceIdentity | undefined>,
  ): Promise<BulkOutcome[]> {
    if (deviceIds.length > MAX_BULK_DEVICES) {
      throw new ValidationError(`At most ${MAX_BULK_DEVICES} devices per bulk operation.`, [
        { path: 'devices', message: `has ${deviceIds.length} items` },
      ]);
    }
    return Promise.all(
      deviceIds.map((deviceId, i) =>
        this.bulkLimit(async (): Promise<BulkOutcome> => {
          try {
            const identity = await run(i);
            return identity ? { deviceId, ok: true, identity } : { deviceId, ok: true };
          } catch (error) {
            return { deviceId, ok: false, error: bulkError(error), message: messageOf(error) };
          }
        }),
      ),
    );
  }

  /**
   * Read-modify-write guarded by the entity's ETag; a lost race is re-read and re-applied, unless `lostRace`
   * says the concurrent write makes this one wrong (then CredentialsResetConflictError).
   */
  private async update(
    deviceId: string,
    change: (entity: IdentityEntity) => IdentityEntity,
    lostRace?: (first: IdentityEntity, current: IdentityEntity) => boolean,
  ): Promise<DeviceIdentity> {
    const client = await this.client();
    let first: IdentityEntity | undefined;
    return optimisticUpdate(`Identity '${deviceId}'`, async () => {
      const current = await this.read(deviceId);
      if (!current) throw new DeviceNotFoundError(deviceId);
      if (first && lostRace?.(first, current.value)) throw new CredentialsResetConflictError(deviceId);
      first ??= current.value;
      const next = { ...change(current.value), updatedAt: this.now() };
      try {
        await client.updateEntity(next, 'Replace', { etag: current.etag });
        return this.toIdentity(next);
      } catch (error) {
        if (isNotFound(error)) throw new DeviceNotFoundError(deviceId);
        throw translate(error, `Identity '${deviceId}'`);
      }
    });
  }

  private async read(deviceId: string): Promise<{ value: IdentityEntity; etag: string } | undefined> {
    try {
      const entity = await (await this.client()).getEntity<IdentityEntity>(toStorageKey(deviceId), ROW);
      const { etag, ...value } = entity;
      return {
        value: {
          partitionKey: value.partitionKey,
          rowKey: value.rowKey,
          deviceId: value.deviceId,
          status: value.status,
          keys: value.keys,
          createdAt: value.createdAt,
          updatedAt: value.updatedAt,
        },
        etag,
      };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw translate(error);
    }
  }

  private toIdentity(entity: IdentityEntity): DeviceIdentity {
    return {
      deviceId: entity.deviceId,
      status: entity.status,
      keys: this.open(entity.deviceId, entity.keys),
    };
  }

  /** Every identity's device id (for reconciliation; keys are not read). */
  async *ids(): AsyncIterable<string> {
    try {
      const entities = (await this.client()).listEntities<Pick<IdentityEntity, 'deviceId'>>({
        queryOptions: { filter: odata`RowKey eq ${ROW}`, select: ['deviceId'] },
      });
      for await (const entity of entities) yield entity.deviceId;
    } catch (error) {
      throw translate(error);
    }
  }

  private seal(deviceId: string, keys: SymmetricKeys): string {
    return this.cipher.encrypt(JSON.stringify([keys.primaryKey, keys.secondaryKey]), deviceId);
  }

  private open(deviceId: string, sealed: string): SymmetricKeys {
    const [primaryKey = '', secondaryKey = ''] = JSON.parse(
      this.cipher.decrypt(sealed, deviceId),
    ) as string[];
    return { primaryKey, secondaryKey };
  }

  private now(): string {
    return (this.options.now?.() ?? new Date()).toISOString();
  }
}

function bulkError(error: unknown): 'already-exists' | 'not-found' | 'invalid' | 'failed' {
  if (error instanceof DeviceAlreadyExistsError) return 'already-exists';
  if (error instanceof DeviceNotFoundError) return 'not-found';
  if (error instanceof ValidationError) return 'invalid';
  return 'failed';
}

const messageOf = (error: unknown) =>
  error instanceof DomainError ? error.message : 'The operation failed.';
