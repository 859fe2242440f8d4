import type { Registry } from 'azure-iothub';
import { keysOrNew, type SymmetricKeys } from '../../provisioning/keys.js';
import {
  MAX_BULK_DEVICES,
  newIdentity,
  type BulkOutcome,
  type DeviceIdentity,
  type IdentityStatus,
  type IdentityStore,
} from '../../provisioning/ports.js';
import { assertDeviceId } from '../../shared/device-id.js';
import { CredentialsResetConflictError, ValidationError } from '../../shared/errors.js';
import { optimisticUpdate } from '../../shared/optimistic-update.js';
import {
  bulkDeviceFailure,
  bulkRefusalBody,
  isNotFound,
  translateBulkDeviceError,
  translateIotHubError,
  type BulkDeviceError,
} from './errors.js';

interface RegistryDevice {
  deviceId: string;
  status?: string;
  authentication?: { symmetricKey?: { primaryKey?: string; secondaryKey?: string }; type?: string };
}

interface BulkResult {
  isSuccessful?: boolean;
  errors?: BulkDeviceError[];
}

/**
 * IdentityStore on IoT Hub's identity registry through the `azure-iothub` SDK (REST). The production adapter:
 * keys live in IoT Hub only; disabling a device there refuses its connections at once.
 */
export class IotHubIdentityStore implements IdentityStore {
  constructor(private readonly registry: Registry) {}

  async create(
    deviceId: string,
    keys?: SymmetricKeys,
    status: IdentityStatus = 'enabled',
  ): Promise<DeviceIdentity> {
    const identity = newIdentity(deviceId, keys, status);
    try {
      const { responseBody } = await this.registry.create(toDevice(identity));
      return fromDevice(responseBody);
    } catch (error) {
      throw translateIotHubError(error, { deviceId });
    }
  }

  async get(deviceId: string): Promise<DeviceIdentity | undefined> {
    try {
      const { responseBody } = await this.registry.get(deviceId);
      return fromDevice(responseBody);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw translateIotHubError(error, { deviceId });
    }
  }

  setStatus(deviceId: string, status: IdentityStatus): Promise<DeviceIdentity> {
    return this.update(deviceId, (current) => ({ ...current, status }));
  }

  regenerateKeys(deviceId: string, keys?: SymmetricKeys): Promise<DeviceIdentity> {
    const fresh = keysOrNew(keys);
    // Serialized on the device's ETag: a reset that lost the race to another reset is refused, not re-applied
    // on top (re-applying would hand out keys the winner's write had already replaced).
    return this.update(
      deviceId,
      (current) => ({ ...current, keys: fresh }),
      (first, current) =>
        first.keys.primaryKey !== current.keys.primaryKey ||
        first.keys.secondaryKey !== current.keys.secondaryKey,
    );
  }

  async delete(deviceId: string): Promise<boolean> {
    try {
      await this.registry.delete(deviceId);
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw translateIotHubError(error, { deviceId });
    }
  }

  async createMany(devices: readonly { deviceId: string; keys?: SymmetricKeys }[]): Promise<BulkOutcome[]> {
    assertBulkSize(devices.length);
    const outcomes: (BulkOutcome | undefined)[] = [];
    const valid: DeviceIdentity[] = [];
    devices.forEach((d, i) => {
      try {
        assertDeviceId(d.deviceId);
        valid.push({
          deviceId: d.deviceId,
          status: 'enabled',
          keys: keysOrNew(d.keys),
        });
      } catch (error) {
        outcomes[i] = {
          deviceId: d.deviceId,
          ok: false,
          error: 'invalid',
          message: (error as Error).message,
        };
      }
    });
    const failed = await this.bulk(() => this.registry.addDevices(valid.map(toDevice)));
    return devices.map((d, i) => {
      const outcome = outcomes[i];
      if (outcome) return outcome;
      const failure = failed.get(d.deviceId);
      if (failure) return failure;
      const identity = valid.find((v) => v.deviceId === d.deviceId);
      return identity ? { deviceId: d.deviceId, ok: true, identity } : { deviceId: d.deviceId, ok: true };
    });
  }

  async deleteMany(deviceIds: readonly string[]): Promise<BulkOutcome[]> {
    assertBulkSize(deviceIds.length);
    const failed = await this.bulk(() =>
      this.registry.removeDevices(
        deviceIds.map((deviceId) => ({ deviceId })),
        true,
      ),
    );
    return deviceIds.map((deviceId) => failed.get(deviceId) ?? { deviceId, ok: true });
  }

  /** A bulk registry call's per-device errors, by device id (IoT Hub answers them in the body, also with 400). */
  private async bulkErrors(
    call: () => Promise<{ responseBody: unknown }>,
  ): Promise<Map<string, BulkDeviceError>> {
    let result: BulkResult;
    try {
      result = (await call()).responseBody as BulkResult;
    } catch (error) {
      const text = bulkRefusalBody(error);
      if (text === undefined) throw translateIotHubError(error, { deviceId: '(bulk)' });
      result = JSON.parse(text) as BulkResult;
    }
    return new Map((result.errors ?? []).map((e) => [e.deviceId ?? '', e]));
  }

  private async bulk(call: () => Promise<{ responseBody: unknown }>): Promise<Map<string, BulkOutcome>> {
    const failed = new Map<string, BulkOutcome>();
    for (const [deviceId, e] of await this.bulkErrors(call)) {
      failed.set(deviceId, { deviceId, ok: false, ...bulkDeviceFailure(e) });
    }
    return failed;
  }

  /**
   * Read-modify-write guarded by the device's ETag. `Registry.update` always sends `If-Match: *`, which would let
   * a credential reset and a deactivation racing each other undo one another; the bulk API's
   * `UpdateIfMatchETag` mode makes the write conditional, and a lost race is re-read and re-applied.
   */
  private async update(
    deviceId: string,
    change: (current: DeviceIdentity) => DeviceIdentity,
    /** True when the concurrent write that won makes this one wrong: CredentialsResetConflictError. */
    lostRace?: (first: DeviceIdentity, current: DeviceIdentity) => boolean,
  ): Promise<DeviceIdentity> {
    let first: DeviceIdentity | undefined;
    return optimisticUpdate(`Device '${deviceId}'`, async () => {
      let device: RegistryDevice & { etag?: string };
      try {
        device = (await this.registry.get(deviceId)).responseBody;
      } catch (error) {
        throw translateIotHubError(error, { deviceId });
      }
      const current = fromDevice(device);
      if (first && lostRace?.(first, current)) throw new CredentialsResetConflictError(deviceId);
      first ??= current;
      const next = change(current);
      const failed = await this.bulkErrors(() =>
        this.registry.updateDevices([{ ...toDevice(next), eTag: device.etag ?? '' }], false),
      );
      const failure = failed.get(deviceId);
      // A lost race (PreconditionFailed) is ConcurrentUpdateError: optimisticUpdate reads and applies again.
      if (failure) throw translateBulkDeviceError(failure, { deviceId });
      return next;
    });
  }
}

function assertBulkSize(n: number): void {
  if (n > MAX_BULK_DEVICES) {
    throw new ValidationError(`At most ${MAX_BULK_DEVICES} devices per bulk operation.`, [
      { path: 'devices', message: `has ${n} items` },
    ]);
  }
}

function toDevice(identity: DeviceIdentity): RegistryDevice & { authentication: { type: string } } {
  return {
    deviceId: identity.deviceId,
    status: identity.status,
    authentication: { type: 'sas', symmetricKey: { ...identity.keys } },
  };
}

function fromDevice(device: RegistryDevice): DeviceIdentity {
  return {
    deviceId: device.deviceId,
    status: device.status === 'disabled' ? 'disabled' : 'enabled',
    keys: {
      primaryKey: device.authentication?.symmetricKey?.primaryKey ?? '',
      secondaryKey: device.authentication?.symmetricKey?.secondaryKey ?? '',
    },
  };
}
