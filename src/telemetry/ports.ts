import type { DeviceState } from './last-known-values.js';

/** Outcome of a store write that may find its work already done. */
export type WriteOutcome = 'created' | 'replaced' | 'unchanged';

/** Where each device's last-known values live (Cosmos DB in production and locally). */
export interface DeviceStateStore {
  get(deviceId: string): Promise<DeviceState | undefined>;
  /**
   * Applies `update` to the stored state under optimistic concurrency, re-reading and re-applying when another
   * writer got there first. `update` returns undefined when there is nothing to write.
   */
  update(
    deviceId: string,
    update: (current: DeviceState | undefined) => DeviceState | undefined,
  ): Promise<WriteOutcome>;
  /** Removes a device's state; false when there was none. */
  delete(deviceId: string): Promise<boolean>;
}

/**
 * Write-once storage of JSON lines under a deterministic name: the raw archive and the dead letters.
 * `put` never overwrites; it answers 'exists' when the name is already taken (a replayed batch).
 */
export interface JsonLinesStore {
  put(name: string, lines: readonly string[]): Promise<'created' | 'exists'>;
}

/** The raw archive of every accepted record (cold path). */
export type RawArchive = JsonLinesStore;
/** Records and batches that could not be processed, kept with a reason and their raw body. */
export type DeadLetterStore = JsonLinesStore;
