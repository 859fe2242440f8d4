import type { Container } from '@azure/cosmos';
import { LRUCache } from 'lru-cache';
import { errorText } from '../../shared/error-text.js';
import { ConcurrentUpdateError, StateRejectedError } from '../../shared/errors.js';
import { optimisticUpdate } from '../../shared/optimistic-update.js';
import { DEFAULT_STATE_CACHE } from '../../telemetry/ingest-options.js';
import type { DeviceState } from '../../telemetry/last-known-values.js';
import type { DeviceStateStore, WriteOutcome } from '../../telemetry/ports.js';
import { toStorageKey } from '../storage-keys.js';
import {
  isConflict,
  isNotFound,
  isPreconditionFailed,
  isRefused,
  refusalReason,
  translateCosmosError,
} from './errors.js';

type StoredState = DeviceState & { id: string };
/** What Cosmos DB adds to every document; never part of the domain state. */
interface SystemProperties {
  _rid?: string;
  _self?: string;
  _etag?: string;
  _attachments?: string;
  _ts?: number;
}

interface Versioned {
  state: DeviceState;
  etag: string;
}

/**
 * DeviceStateStore on a Cosmos DB container partitioned by `/id` (one document per device).
 *
 * `update` keeps the last state it read or wrote per device (an LRU of at most `cacheSize` devices and
 * `cacheMaxBytes` of serialized state) and merges into that instead of reading first. This is safe because merges
 * only ever move state forward: a stale cached state can only make a write fail its If-Match (412), after which
 * the document is re-read; and a delta that changes nothing against the cached state changes nothing against any
 * newer stored state either. Event Hubs gives each partition to one instance at a time, so in steady state the
 * cache saves the read of every write.
 */
export class CosmosDeviceStateStore implements DeviceStateStore {
  private readonly cache: LRUCache<string, Versioned> | undefined;

  constructor(
    private readonly container: () => Promise<Container>,
    /** Devices whose last state is kept in memory for `update`; 0 disables the cache. */
    cacheSize: number = DEFAULT_STATE_CACHE.size,
    /** How long (ms) a cached state is used before it is read again (bounds how long a deleted document stays unseen). */
    cacheTtlMs: number = DEFAULT_STATE_CACHE.ttlSeconds * 1000,
    /**
     * Most bytes of cached state (its JSON length, estimated: see jsonLengthEstimate; measured heap use is
     * 0.5–1.4× that). One document can near Cosmos DB's 2 MB item limit, so a count alone does not bound memory.
     * A state larger than this is not cached.
     */
    cacheMaxBytes: number = DEFAULT_STATE_CACHE.maxBytes,
  ) {
    this.cache =
      cacheSize > 0 && cacheMaxBytes > 0
        ? new LRUCache<string, Versioned>({
            max: cacheSize,
            maxSize: cacheMaxBytes,
            // Not JSON.stringify: the SDK already serializes every write once, and a state can near 2 MB.
            sizeCalculation: (entry) => Math.max(1, jsonLengthEstimate(entry.state)),
            ttl: cacheTtlMs,
          })
        : undefined;
  }

  /** What the state cache holds now: entries and their counted bytes (for tests and diagnostics). */
  cacheUsage(): { entries: number; bytes: number } {
    return { entries: this.cache?.size ?? 0, bytes: this.cache?.calculatedSize ?? 0 };
  }

  async get(deviceId: string): Promise<DeviceState | undefined> {
    return (await this.read(deviceId))?.state;
  }

  async update(
    deviceId: string,
    update: (current: DeviceState | undefined) => DeviceState | undefined,
  ): Promise<WriteOutcome> {
    const container = await this.resolveContainer();
    const id = toStorageKey(deviceId);
    const what = `Device state for '${deviceId}'`;
    return optimisticUpdate(what, async (attempt) => {
      // The first attempt merges into the cached state; one that lost a race reads the document again.
      const current = (attempt === 1 ? this.cache?.get(deviceId) : undefined) ?? (await this.read(deviceId));
      const next = update(current?.state);
      if (next === undefined) return 'unchanged';
      const doc = { ...next, id };
      try {
        if (current === undefined) {
          // create() fails with 409 when another writer created the document first: re-read and merge.
          const { etag } = await container.items.create(doc);
          this.cache?.set(deviceId, { state: next, etag });
          return 'created';
        }
        const { etag } = await container
          .item(id, id)
          .replace(doc, { accessCondition: { type: 'IfMatch', condition: current.etag } });
        this.cache?.set(deviceId, { state: next, etag });
        return 'replaced';
      } catch (error) {
        // Created, changed or deleted by another writer since it was read: read again and merge again.
        if (isConflict(error) || isPreconditionFailed(error) || (isNotFound(error) && current)) {
          this.cache?.delete(deviceId);
          throw new ConcurrentUpdateError(`${what} changed concurrently.`);
        }
        throw translate(error);
      }
    });
  }

  async delete(deviceId: string): Promise<boolean> {
    const id = toStorageKey(deviceId);
    this.cache?.delete(deviceId);
    const container = await this.resolveContainer();
    try {
      await container.item(id, id).delete();
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw translate(error);
    }
  }

  private async read(deviceId: string): Promise<Versioned | undefined> {
    const id = toStorageKey(deviceId);
    const container = await this.resolveContainer();
    try {
      const { resource, etag } = await container.item(id, id).read<StoredState>();
      if (!resource) return undefined;
      const {
        id: _id,
        _rid,
        _self,
        _etag,
        _attachments,
        _ts,
        ...state
      } = resource as StoredState & SystemProperties;
      return { state, etag };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw translate(error);
    }
  }

  /** The container (created on first use), its failures translated like those of any other call. */
  private async resolveContainer(): Promise<Container> {
    try {
      return await this.container();
    } catch (error) {
      throw translate(error);
    }
  }
}

/** A refused state (413: the 2 MB item limit; 400) is rejected for good; throttling and outages as every adapter. */
function translate(error: unknown): unknown {
  if (isRefused(error)) {
    return new StateRejectedError(
      `Cosmos DB refused the device state (${refusalReason(error)}): ${errorText(error)}`,
    );
  }
  return translateCosmosError(error);
}

/**
 * About how many characters `value` has as JSON, without building the text: strings and keys count their length
 * plus quotes (escapes are not counted: what a string costs in memory is its length), numbers 8, and each
 * separator and bracket 1. Linear in the state, allocates only its work stack.
 */
export function jsonLengthEstimate(value: unknown): number {
  let size = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const next = stack.pop();
    if (typeof next === 'string') size += next.length + 2;
    else if (typeof next === 'number') size += 8;
    else if (typeof next === 'boolean') size += 5;
    else if (Array.isArray(next)) {
      size += 2 + next.length;
      for (const item of next) stack.push(item);
    } else if (typeof next === 'object' && next !== null) {
      size += 2;
      for (const [key, item] of Object.entries(next)) {
        size += key.length + 4;
        stack.push(item);
      }
    } else size += 4; // null (undefined properties are left out of JSON, but are rare here)
  }
  return size;
}
