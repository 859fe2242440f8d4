import { assertDeviceId } from '../shared/device-id.js';
import { keysOrNew, type SymmetricKeys } from './keys.js';

/** Whether the identity store lets a device connect. */
export type IdentityStatus = 'enabled' | 'disabled';

/** A device's entry in the identity store: the only place its keys live (seed 002 §3.2). */
export interface DeviceIdentity {
  deviceId: string;
  status: IdentityStatus;
  keys: SymmetricKeys;
}

/** A new identity as every identity store creates it: a valid id, the status asked for, given or fresh keys. */
export function newIdentity(
  deviceId: string,
  keys?: SymmetricKeys,
  status: IdentityStatus = 'enabled',
): DeviceIdentity {
  return { deviceId: assertDeviceId(deviceId), status, keys: keysOrNew(keys) };
}

/** Outcome of one device in a bulk operation. */
export type BulkOutcome =
  | { deviceId: string; ok: true; identity?: DeviceIdentity }
  | {
      deviceId: string;
      ok: false;
      error: 'already-exists' | 'not-found' | 'invalid' | 'failed';
      message: string;
    };

/** IoT Hub accepts at most 100 devices per bulk registry operation. */
export const MAX_BULK_DEVICES = 100;

/**
 * The identity store (IoT Hub's identity registry, or the table-based custom store of the local run).
 * Errors: DeviceAlreadyExistsError, DeviceNotFoundError, ValidationError, ThrottledError.
 */
export interface IdentityStore {
  /** Creates an identity (enabled unless told otherwise) with the given keys, or freshly generated ones. */
  create(deviceId: string, keys?: SymmetricKeys, status?: IdentityStatus): Promise<DeviceIdentity>;
  get(deviceId: string): Promise<DeviceIdentity | undefined>;
  /** Enables or disables the identity; a disabled device is refused at once. */
  setStatus(deviceId: string, status: IdentityStatus): Promise<DeviceIdentity>;
  /** Replaces both keys (given, or freshly generated); tokens signed with the old keys stop working. */
  regenerateKeys(deviceId: string, keys?: SymmetricKeys): Promise<DeviceIdentity>;
  /** Deletes the identity; false when there was none. */
  delete(deviceId: string): Promise<boolean>;
  /** Creates up to MAX_BULK_DEVICES identities, with one outcome per device in request order. */
  createMany(devices: readonly { deviceId: string; keys?: SymmetricKeys }[]): Promise<BulkOutcome[]>;
  /** Deletes up to MAX_BULK_DEVICES identities, with one outcome per device in request order. */
  deleteMany(deviceIds: readonly string[]): Promise<BulkOutcome[]>;
}

/**
 * Private blobs for workflow data that must stay out of orchestration history, status and logs: bulk device
 * specs, generated keys, per-device results. Names are paths inside one private container.
 */
export interface PrivateFiles {
  /** Stores `text` unless `name` exists; returns what is stored (the first writer wins, so retries agree). */
  writeOnce(name: string, text: string): Promise<string>;
  /** Stores or replaces `name`. */
  write(name: string, text: string): Promise<void>;
  read(name: string): Promise<string | undefined>;
  /** The blob's text with its ETag, for a conditional `replaceIfUnchanged`. */
  readVersioned(name: string): Promise<{ text: string; etag: string } | undefined>;
  /** Replaces `name` only if it still has `etag`; false when another writer changed (or removed) it since. */
  replaceIfUnchanged(name: string, text: string, etag: string): Promise<boolean>;
  /** Removes every blob whose name starts with `prefix`. */
  deletePrefix(prefix: string): Promise<void>;
  /** Names of the blobs whose name starts with `prefix`, in name order. */
  list(prefix: string): Promise<string[]>;
}

/**
 * Authenticated encryption of small secrets at rest (AES-256-GCM in src/infra/crypto). The associated data
 * binds a ciphertext to its place (a blob and device), so a ciphertext copied elsewhere does not decrypt.
 */
export interface SecretCipher {
  encrypt(plaintext: string, associatedData: string): string;
  /** Throws when the ciphertext was altered, moved, or made with another key. */
  decrypt(ciphertext: string, associatedData: string): string;
}
