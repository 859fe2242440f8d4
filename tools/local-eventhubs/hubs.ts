import { join } from 'node:path';
import type { LocalHubConfig } from './config.js';
import { PartitionLog, type Retention } from './partition-log.js';
import { partitionForKey } from './partition-hash.js';

/** One hub of the namespace: its partitions' logs and its consumer groups. */
export interface Hub {
  name: string;
  createdAt: Date;
  partitionIds: string[];
  partitions: PartitionLog[];
  consumerGroups: Set<string>;
  /** Round-robin cursor for events sent to the hub without partition or key. */
  nextPartition: number;
}

/** The hubs of the local namespace, looked up case-insensitively as Event Hubs does. */
export class Namespace {
  private constructor(private readonly hubs: Map<string, Hub>) {}

  /** Opens every hub's partitions (reloading them from `folder` when given). */
  static async open(
    configs: readonly LocalHubConfig[],
    retention: Omit<Retention, 'onSizeDrop'> & {
      /** Told which partition (`hub/id`) dropped how many events by size. */
      onSizeDrop?: (dropped: number, partition: string) => void;
    },
    folder?: string,
  ): Promise<Namespace> {
    const hubs = new Map<string, Hub>();
    const createdAt = new Date();
    for (const config of configs) {
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,255}$/.test(config.name)) {
        throw new Error(`Invalid hub name '${config.name}'`);
      }
      if (
        !Number.isInteger(config.partitionCount) ||
        config.partitionCount < 1 ||
        config.partitionCount > 32
      ) {
        throw new Error(`Hub '${config.name}': partitionCount must be an integer from 1 to 32`);
      }
      const partitions: PartitionLog[] = [];
      for (let p = 0; p < config.partitionCount; p++) {
        const file = folder === undefined ? undefined : join(folder, config.name, `${p}.log`);
        const onSizeDrop = retention.onSizeDrop;
        partitions.push(
          await PartitionLog.open(
            {
              maxAgeMs: retention.maxAgeMs,
              maxBytes: retention.maxBytes,
              ...(onSizeDrop
                ? {
                    onSizeDrop: (n: number) => {
                      onSizeDrop(n, `${config.name}/${p}`);
                    },
                  }
                : {}),
            },
            file,
          ),
        );
      }
      hubs.set(config.name.toLowerCase(), {
        name: config.name,
        createdAt,
        partitionIds: partitions.map((_, i) => String(i)),
        partitions,
        consumerGroups: new Set(config.consumerGroups.map((g) => g.toLowerCase())),
        nextPartition: 0,
      });
    }
    return new Namespace(hubs);
  }

  /** The hub of that name, if configured. */
  hub(name: string): Hub | undefined {
    return this.hubs.get(name.toLowerCase());
  }

  /** Every hub. */
  all(): Hub[] {
    return [...this.hubs.values()];
  }

  /** Events kept in memory across hubs and partitions. */
  retained(): number {
    let n = 0;
    for (const hub of this.hubs.values()) for (const log of hub.partitions) n += log.size;
    return n;
  }

  /** Applies time-based retention everywhere. */
  enforceRetention(nowMs = Date.now()): void {
    for (const hub of this.hubs.values()) for (const log of hub.partitions) log.enforceRetention(nowMs);
  }

  /** Flushes and closes every partition file. */
  async close(): Promise<void> {
    for (const hub of this.hubs.values()) for (const log of hub.partitions) await log.close();
  }
}

/** A partition's index from its id ('0'…'n-1'), or undefined. */
export function partitionIndex(hub: Hub, id: string): number | undefined {
  const index = hub.partitionIds.indexOf(id);
  return index < 0 ? undefined : index;
}

/** Where an event sent to the hub goes: the key's hash partition, else round robin. */
export function choosePartition(hub: Hub, partitionKey: string | undefined): number {
  if (partitionKey !== undefined) return partitionForKey(partitionKey, hub.partitions.length);
  const index = hub.nextPartition;
  hub.nextPartition = (index + 1) % hub.partitions.length;
  return index;
}
