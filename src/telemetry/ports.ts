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

/** A write-once write: 'exists' when the name was already taken (a replayed batch), which is never overwritten. */
export type WriteOnceOutcome = 'created' | 'exists';

/** The raw archive of every accepted record (cold path), one write-once JSON-lines blob per name. */
export interface RawArchive {
  /** Archives `lines` (one record each) under `name` (archive-layout.ts); never overwrites. */
  archive(name: string, lines: readonly string[]): Promise<WriteOnceOutcome>;
}

/** Records and batches that could not be processed, kept with a reason and their raw body. */
export interface DeadLetterStore {
  /** Parks `lines` (one dead letter each) under `name` (archive-layout.ts); never overwrites. */
  park(name: string, lines: readonly string[]): Promise<WriteOnceOutcome>;
}
