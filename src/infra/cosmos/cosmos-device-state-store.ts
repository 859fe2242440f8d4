import type { Container } from '@azure/cosmos';
import { LRUCache } from 'lru-cache';
import { PreconditionFailedError, StateRejectedError, ThrottledError } from '../../shared/errors.js';
import type { DeviceState } from '../../telemetry/last-known-values.js';
import type { DeviceStateStore, WriteOutcome } from '../../telemetry/ports.js';
import { toStorageKey } from '../storage-keys.js';
import { cosmosStatus } from './cosmos-client.js';

type StoredState = DeviceState & { id: string };
/** What Cosmos DB adds to every document; never part of the domain state. */
interface SystemProperties {
  _rid?: string;
  _self?: string;
  _etag?: string;
  _attachments?: string;
  _ts?: number;
}

/** How often a write re-reads and re-merges after losing an optimistic-concurrency race. */
const MAX_CONFLICT_RETRIES = 20;

interface Versioned {
  state: DeviceState;
  etag: string;
}

/** Default bound of the state cache: 256 MiB of serialized state, sized for a 2 GB Flex Consumption instance. */
export const DEFAULT_STATE_CACHE_MAX_BYTES = 256 * 1024 * 1024;

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
    cacheSize = 10_000,
    /** How long (ms) a cached state is used before it is read again (bounds how long a deleted document stays unseen). */
    cacheTtlMs = 300_000,
    /**
     * Most bytes of cached state (its JSON length; measured heap use is 0.5–1.4× that). One document can near
     * Cosmos DB's 2 MB item limit, so a count alone does not bound memory. A state larger than this is not cached.
     */
    cacheMaxBytes = DEFAULT_STATE_CACHE_MAX_BYTES,
  ) {
    this.cache =
      cacheSize > 0 && cacheMaxBytes > 0
        ? new LRUCache<string, Versioned>({
            max: cacheSize,
            maxSize: cacheMaxBytes,
            sizeCalculation: (entry) => Math.max(1, JSON.stringify(entry.state).length),
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
    const container = await this.container();
    const id = toStorageKey(deviceId);
    let current: Versioned | undefined = this.cache?.get(deviceId);
    let fromCache = current !== undefined;
    for (let attempt = 0; attempt <= MAX_CONFLICT_RETRIES; attempt++) {
      if (!fromCache) current = await this.read(deviceId);
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
        const status = cosmosStatus(error);
        if (status === 409 || status === 412 || (status === 404 && current !== undefined)) {
          this.cache?.delete(deviceId);
          fromCache = false;
          continue;
        }
        throw translate(error);
      }
    }
    throw new PreconditionFailedError(
      `Device state for '${deviceId}' kept changing under ${MAX_CONFLICT_RETRIES} concurrent writes.`,
    );
  }

  async delete(deviceId: string): Promise<boolean> {
    const id = toStorageKey(deviceId);
    this.cache?.delete(deviceId);
    try {
      await (await this.container()).item(id, id).delete();
      return true;
    } catch (error) {
      if (cosmosStatus(error) === 404) return false;
      throw translate(error);
    }
  }

  private async read(deviceId: string): Promise<Versioned | undefined> {
    const id = toStorageKey(deviceId);
    try {
      const { resource, etag } = await (await this.container()).item(id, id).read<StoredState>();
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
      if (cosmosStatus(error) === 404) return undefined;
      throw translate(error);
    }
  }
}

function translate(error: unknown): unknown {
  const status = cosmosStatus(error);
  if (status === 413 || status === 400) {
    return new StateRejectedError(`Cosmos DB refused the device state (${status}): ${errorMessage(error)}`);
  }
  if (status === 429) {
    const ms = (error as { retryAfterInMs?: number }).retryAfterInMs;
    return new ThrottledError(
      'Cosmos DB is throttling requests.',
      ms === undefined ? undefined : Math.ceil(ms / 1000),
    );
  }
  return error;
}

const errorMessage = (error: unknown) =>
  error instanceof Error ? error.message.split('\n')[0] : String(error);
