import type { Container } from '@azure/cosmos';
import { PreconditionFailedError, ThrottledError } from '../../shared/errors.js';
import type { DeviceState } from '../../telemetry/last-known-values.js';
import type { DeviceStateStore, WriteOutcome } from '../../telemetry/ports.js';
import { cosmosStatus, toCosmosId } from './cosmos-client.js';

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

/** DeviceStateStore on a Cosmos DB container partitioned by `/id` (one document per device). */
export class CosmosDeviceStateStore implements DeviceStateStore {
  constructor(private readonly container: () => Promise<Container>) {}

  async get(deviceId: string): Promise<DeviceState | undefined> {
    return (await this.read(deviceId))?.state;
  }

  async update(
    deviceId: string,
    update: (current: DeviceState | undefined) => DeviceState | undefined,
  ): Promise<WriteOutcome> {
    const container = await this.container();
    const id = toCosmosId(deviceId);
    for (let attempt = 0; attempt <= MAX_CONFLICT_RETRIES; attempt++) {
      const current = await this.read(deviceId);
      const next = update(current?.state);
      if (next === undefined) return 'unchanged';
      const doc = { ...next, id };
      try {
        if (current === undefined) {
          // create() fails with 409 when another writer created the document first: re-read and merge.
          await container.items.create(doc);
          return 'created';
        }
        await container
          .item(id, id)
          .replace(doc, { accessCondition: { type: 'IfMatch', condition: current.etag } });
        return 'replaced';
      } catch (error) {
        const status = cosmosStatus(error);
        if (status === 409 || status === 412) continue;
        throw translate(error);
      }
    }
    throw new PreconditionFailedError(
      `Device state for '${deviceId}' kept changing under ${MAX_CONFLICT_RETRIES} concurrent writes.`,
    );
  }

  async delete(deviceId: string): Promise<boolean> {
    const id = toCosmosId(deviceId);
    try {
      await (await this.container()).item(id, id).delete();
      return true;
    } catch (error) {
      if (cosmosStatus(error) === 404) return false;
      throw translate(error);
    }
  }

  private async read(deviceId: string): Promise<{ state: DeviceState; etag: string } | undefined> {
    const id = toCosmosId(deviceId);
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
  if (cosmosStatus(error) === 429) {
    const ms = (error as { retryAfterInMs?: number }).retryAfterInMs;
    return new ThrottledError(
      'Cosmos DB is throttling requests.',
      ms === undefined ? undefined : Math.ceil(ms / 1000),
    );
  }
  return error;
}
