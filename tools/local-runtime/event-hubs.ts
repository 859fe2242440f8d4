/**
 * Event Hubs in the embedded local runtime: in-process hubs (partitions, sequence numbers, consumers that read
 * at their own pace) and the driver that serves an `eventHubTrigger` registration from them the way the Functions
 * host does: batches of `maxEventBatchSize`, the IoT Hub built-in endpoint's trigger metadata, the function's
 * retry policy, and a checkpoint that moves on after the last attempt even when it throws (at-least-once).
 */
import functions from '@azure/functions';
import { createHash, randomUUID } from 'node:crypto';

const { InvocationContext } = functions;

/** A registration as `@azure/functions-core` receives it: binding metadata and the handler. */
export interface Registration {
  metadata: {
    name: string;
    bindings: Record<string, Record<string, unknown>>;
    retryOptions?: { maxRetryCount?: number; minimumInterval?: { seconds?: number } };
  };
  callback: (...args: unknown[]) => Promise<unknown>;
}

/** The trigger binding of a registration (direction `in`, type `…Trigger`). */
export const triggerBinding = (r: Registration) =>
  Object.values(r.metadata.bindings).find(
    (b) => String(b.direction) === 'in' && String(b.type).endsWith('Trigger'),
  );

/** Partitions of every local hub. */
export const PARTITIONS = 4;

/** One event as an Event Hub keeps it. */
export interface HubEvent {
  body: unknown;
  properties: Record<string, unknown>;
  systemProperties: Record<string, unknown>;
  enqueuedTime: string;
  sequenceNumber: number;
  offset: string;
}

/** An in-process Event Hub: partitions, sequence numbers, and consumers that read at their own pace. */
export class LocalHub {
  readonly partitions: HubEvent[][] = Array.from({ length: PARTITIONS }, () => []);
  private readonly wakers = new Set<() => void>();

  constructor(readonly name: string) {}

  /** The partition a partition key maps to (a stable hash, as Event Hubs does). */
  static partitionOf(partitionKey: string): number {
    return createHash('sha256').update(partitionKey).digest().readUInt32BE(0) % PARTITIONS;
  }

  publish(
    body: unknown,
    partitionKey: string,
    properties: Record<string, unknown>,
    system: Record<string, unknown>,
  ) {
    const partition = this.partitions[LocalHub.partitionOf(partitionKey)] as HubEvent[];
    const sequenceNumber = partition.length + 1;
    const enqueuedTime = new Date().toISOString();
    partition.push({
      body,
      properties,
      enqueuedTime,
      sequenceNumber,
      offset: String(sequenceNumber * 1024),
      systemProperties: {
        ...system,
        'x-opt-sequence-number': sequenceNumber,
        'x-opt-offset': String(sequenceNumber * 1024),
        'x-opt-enqueued-time': enqueuedTime,
      },
    });
    for (const wake of this.wakers) wake();
  }

  /** Calls `handle` with each new batch of each partition, in order, until stopped (at-least-once). */
  consume(
    consumerGroup: string,
    maxBatch: number,
    handle: (batch: HubEvent[], partitionId: string) => Promise<void>,
  ) {
    let stopped = false;
    const positions = this.partitions.map(() => 0);
    let wake: () => void = () => undefined;
    const loop = async () => {
      while (!stopped) {
        let worked = false;
        for (const [p, partition] of this.partitions.entries()) {
          const from = positions[p] ?? 0;
          if (from >= partition.length) continue;
          const batch = partition.slice(from, from + maxBatch);
          await handle(batch, String(p));
          positions[p] = from + batch.length;
          worked = true;
        }
        if (!worked) await new Promise<void>((resolve) => (wake = resolve));
      }
    };
    const waker = () => {
      wake();
    };
    this.wakers.add(waker);
    const done = loop();
    return {
      consumerGroup,
      stop: async () => {
        stopped = true;
        this.wakers.delete(waker);
        wake();
        await done;
      },
    };
  }
}

/** The trigger metadata the Functions host gives a `cardinality: 'many'` Event Hub trigger (v4 key casing). */
export function triggerMetadata(
  hub: LocalHub,
  consumerGroup: string,
  partitionId: string,
  batch: readonly HubEvent[],
) {
  return {
    partitionContext: { eventHubName: hub.name, consumerGroup, partitionId },
    sequenceNumberArray: batch.map((e) => e.sequenceNumber),
    offsetArray: batch.map((e) => e.offset),
    enqueuedTimeUtcArray: batch.map((e) => e.enqueuedTime),
    partitionKeyArray: batch.map(() => null),
    propertiesArray: batch.map((e) => e.properties),
    systemPropertiesArray: batch.map((e) => e.systemProperties),
  };
}

/** `%Name%` in binding metadata resolved from the app settings, as the host does. */
export const resolveSetting = (value: unknown, settings: Record<string, string>) =>
  String(value).replace(/%([^%]+)%/g, (_m, name: string) => settings[name] ?? '');

export interface EventHubTriggerOptions {
  settings: Record<string, string>;
  /** The hub of a name (created on first use). */
  hub: (name: string) => LocalHub;
  /** host.json `extensions.eventHubs.maxEventBatchSize`. */
  maxBatch: number;
  log: (message: string) => void;
  /** Waits between attempts (ms); tests pass one that does not wait. */
  sleep?: (ms: number) => Promise<void>;
}

/** Serves one `eventHubTrigger` registration from its local hub until stopped. */
export function startEventHubTrigger(registration: Registration, options: EventHubTriggerOptions) {
  const { settings, log } = options;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const binding = triggerBinding(registration) ?? {};
  const source = options.hub(resolveSetting(binding.eventHubName, settings));
  const group = resolveSetting(binding.consumerGroup ?? '$Default', settings);
  const retries = registration.metadata.retryOptions?.maxRetryCount ?? 0;
  const firstDelayMs = Math.min(
    2000,
    (registration.metadata.retryOptions?.minimumInterval?.seconds ?? 1) * 1000,
  );
  return source.consume(group, options.maxBatch, async (batch, partitionId) => {
    for (let attempt = 0; ; attempt++) {
      try {
        const context = new InvocationContext({
          functionName: registration.metadata.name,
          invocationId: randomUUID(),
          triggerMetadata: triggerMetadata(source, group, partitionId, batch),
          retryContext: { retryCount: attempt, maxRetryCount: retries },
          logHandler: (_level, ...args) => {
            log(`[${registration.metadata.name}] ${args.map(String).join(' ')}`);
          },
        });
        await registration.callback(
          batch.map((e) => e.body),
          context,
        );
        return;
      } catch (error) {
        log(
          `[${registration.metadata.name}] attempt ${attempt + 1} failed: ${error instanceof Error ? error.message : String(error)}`,
        );
        // At-least-once with the function's retry policy; after the last retry the host moves on.
        if (attempt >= retries) return;
        await sleep(firstDelayMs * 2 ** attempt);
      }
    }
  });
}
