import type { IdentityStatus } from './ports.js';

/**
 * A device's entry in the registry (seed 002 §3.3): descriptive metadata and status for the solution. Never
 * any key or secret: those live only in the identity store.
 */
export interface DeviceRecord {
  id: string;
  status: IdentityStatus;
  metadata: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
}

/** A record as stored, with the ETag that guards the next write. */
export type VersionedDeviceRecord = DeviceRecord & { etag: string };

/** A registry query, built only from validated parameters. */
export interface DeviceQuery {
  status?: IdentityStatus;
  /** Top-level metadata fields that must equal the given values. */
  metadata?: Readonly<Record<string, string | number | boolean>>;
  /** Page size (1–1000). */
  top: number;
  continuationToken?: string;
}

export interface DevicePage {
  items: VersionedDeviceRecord[];
  continuationToken?: string;
}

/**
 * The device registry. Errors: DeviceAlreadyExistsError, DeviceNotFoundError, PreconditionFailedError (ETag),
 * ThrottledError.
 */
export interface DeviceRegistry {
  create(record: DeviceRecord): Promise<VersionedDeviceRecord>;
  get(id: string): Promise<VersionedDeviceRecord | undefined>;
  /** Replaces the record; with `ifMatch`, only if it still has that ETag. */
  replace(record: DeviceRecord, ifMatch?: string): Promise<VersionedDeviceRecord>;
  /** Removes the record; false when there was none. */
  delete(id: string): Promise<boolean>;
  query(query: DeviceQuery): Promise<DevicePage>;
}

/** Metadata field names usable in queries: plain identifiers, so they can be written into SQL safely. */
export const QUERYABLE_FIELD = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
