import {
  ConcurrentUpdateError,
  DeviceAlreadyExistsError,
  DeviceNotFoundError,
  StaleCatalogEntryError,
} from '../shared/errors.js';
import { optimisticUpdate } from '../shared/optimistic-update.js';
import type { IdentityStatus } from './ports.js';

/**
 * A device's entry in the device catalog (seed 002 §3.3): descriptive metadata and status for the solution. Never
 * any key or secret: those live only in the identity store.
 */
export interface DeviceRecord {
  id: string;
  status: IdentityStatus;
  metadata: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
  /**
   * Who wrote the entry: the provisioning workflow's instance id, or a random token of one synchronous
   * registration. A writer recognises its own earlier write by it; never shown by the API. Absent on entries
   * written before tokens existed.
   */
  creationToken?: string;
}

/** A record as stored, with the ETag that guards the next write. */
export type VersionedDeviceRecord = DeviceRecord & { etag: string };

/** A catalog query, built only from validated parameters. */
export interface DeviceQuery {
  status?: IdentityStatus;
  /** Top-level metadata fields that must equal the given values. */
  metadata?: Readonly<Record<string, string | number | boolean>>;
  /** Only the entries this writer wrote (internal: a bulk run finds its own entries; never from a client). */
  creationToken?: string;
  /** Page size (1–1000). */
  top: number;
  continuationToken?: string;
}

export interface DevicePage {
  items: VersionedDeviceRecord[];
  continuationToken?: string;
}

/**
 * The device catalog. Errors: DeviceAlreadyExistsError, DeviceNotFoundError, ConcurrentUpdateError (the
 * `ifMatch` given no longer holds), ThrottledError / ServiceUnavailableError.
 */
export interface DeviceCatalog {
  create(record: DeviceRecord): Promise<VersionedDeviceRecord>;
  get(id: string): Promise<VersionedDeviceRecord | undefined>;
  /** Replaces the record; with `ifMatch`, only if it still has that ETag. */
  replace(record: DeviceRecord, ifMatch?: string): Promise<VersionedDeviceRecord>;
  /** Removes the record (with `ifMatch`, only if it still has that ETag); false when there was none. */
  delete(id: string, ifMatch?: string): Promise<boolean>;
  query(query: DeviceQuery): Promise<DevicePage>;
}

/** Metadata field names usable in queries: plain identifiers, so they can be written into SQL safely. */
export const QUERYABLE_FIELD = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** A record as the API shows it: no ETag (that is a header) and no creation token. */
export function publicRecord(record: VersionedDeviceRecord): Omit<DeviceRecord, 'creationToken'> {
  const { etag: _etag, creationToken: _token, ...device } = record;
  return device;
}

/**
 * Writes a new entry for a device whose identity the caller has just created (so no identity existed before),
 * tagged with the caller's `token`. On a conflict the entry is the caller's own earlier write when the tokens
 * match; an entry without a token was left by a version that deleted the identity before the entry, and is
 * replaced (nothing of it is kept); an entry with another token belongs to another writer: StaleCatalogEntryError,
 * and the entry is left alone.
 */
export async function claimCatalogEntry(
  catalog: DeviceCatalog,
  record: DeviceRecord,
  token: string,
): Promise<VersionedDeviceRecord> {
  const ours = { ...record, creationToken: token };
  return optimisticUpdate(`The catalog entry of '${record.id}'`, async () => {
    try {
      return await catalog.create(ours);
    } catch (error) {
      if (!(error instanceof DeviceAlreadyExistsError)) throw error;
    }
    const existing = await catalog.get(record.id);
    if (existing?.creationToken === token) return existing;
    if (existing && existing.creationToken !== undefined) throw new StaleCatalogEntryError(record.id);
    // Removed since the create failed: create again. (A replace that loses to a change is retried the same way.)
    if (!existing)
      throw new ConcurrentUpdateError(`The catalog entry of '${record.id}' changed concurrently.`);
    try {
      return await catalog.replace(ours, existing.etag);
    } catch (error) {
      if (error instanceof DeviceNotFoundError) {
        throw new ConcurrentUpdateError(`The catalog entry of '${record.id}' was removed concurrently.`);
      }
      throw error;
    }
  });
}

/**
 * Removes an entry only when `token` wrote it (compared and deleted under its ETag): compensation never deletes
 * an entry another writer owns. Returns whether it deleted.
 */
export async function deleteOwnCatalogEntry(
  catalog: DeviceCatalog,
  id: string,
  token: string,
): Promise<boolean> {
  const existing = await catalog.get(id);
  if (existing?.creationToken !== token) return false;
  try {
    return await catalog.delete(id, existing.etag);
  } catch (error) {
    // Changed since we read it: no longer provably ours.
    if (error instanceof DeviceNotFoundError || error instanceof ConcurrentUpdateError) return false;
    throw error;
  }
}
