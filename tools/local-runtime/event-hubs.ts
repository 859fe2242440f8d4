/**
 * Event Hubs in the embedded local runtime: in-process hubs (partitions, sequence numbers, consumers that read
 * at their own pace) and the driver that serves an `eventHubTrigger` registration from them the way the Functions
 * host does: batches of `maxEventBatchSize`, the IoT Hub built-in endpoint's trigger metadata, the function's
 * retry policy, and a checkpoint that moves on after the last attempt even when it throws (at-least-once).
 */
import functions from '@azure/functions';
import { createHash, randomUUID } from 'node:crypto';
import { levelOfHost, type Logger } from './invocation-log.js';
import { formatError, formatLogArgs } from './log-format.js';

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
  body: Buffer;
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

  /** Adds an event; an Event Hub carries bytes, so a string is UTF-8 encoded and anything else JSON-serialized. */
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
      body: Buffer.isBuffer(body)
        ? body
        : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)),
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

  /**
   * Calls `handle` with each new batch of each partition, in order, until stopped (at-least-once). Each
   * partition has its own loop, as each partition has its own owner in Azure: a batch that fails and waits
   * for its retries holds back only the events behind it in its own partition.
   */
  consume(
    consumerGroup: string,
    maxBatch: number,
    handle: (batch: HubEvent[], partitionId: string) => Promise<void>,
  ) {
    let stopped = false;
    const loops = this.partitions.map((partition, p) => {
      let position = 0;
      let wake: () => void = () => undefined;
      const waker = () => {
        wake();
      };
      this.wakers.add(waker);
      const done = (async () => {
        while (!stopped) {
          if (position >= partition.length) {
            await new Promise<void>((resolve) => (wake = resolve));
            continue;
          }
          const batch = partition.slice(position, position + maxBatch);
          await handle(batch, String(p));
          position += batch.length; // the checkpoint
        }
      })();
      return { waker, done };
    });
    return {
      consumerGroup,
      stop: async () => {
        stopped = true;
        for (const loop of loops) {
          this.wakers.delete(loop.waker);
          loop.waker();
        }
        await Promise.all(loops.map((loop) => loop.done));
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
  log: Logger;
  /** Waits between attempts (ms); tests pass one that does not wait. */
  sleep?: (ms: number) => Promise<void>;
}

/**
 * The handler's first argument for a batch, as the host builds it for the trigger's `dataType`: `binary` gives
 * the bytes, `string` the text, and no dataType (or any other) JSON-parses every body, which fails the whole
 * invocation if one body is not JSON, before the handler runs ("Binding parameters to complex objects … uses
 * Json.NET serialization"; azure-functions-nodejs-library #187/#340). Modelled so a regression shows up locally.
 */
export function deliveredBodies(batch: readonly HubEvent[], dataType: unknown): unknown[] {
  if (dataType === 'binary') return batch.map((e) => e.body);
  if (dataType === 'string') return batch.map((e) => e.body.toString('utf8'));
  return batch.map((e, i) => {
    try {
      return JSON.parse(e.body.toString('utf8')) as unknown;
    } catch {
      throw new Error(
        `Exception binding parameter 'messages': event ${i} of the batch (sequence number ${e.sequenceNumber}) is not JSON and the trigger has no dataType`,
      );
    }
  });
}

/** Serves one `eventHubTrigger` registration from its local hub until stopped. */
export function startEventHubTrigger(registration: Registration, options: EventHubTriggerOptions) {
  const { settings, log } = options;
  const name = registration.metadata.name;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const binding = triggerBinding(registration) ?? {};
  const source = options.hub(resolveSetting(binding.eventHubName, settings));
  const group = resolveSetting(binding.consumerGroup ?? '$Default', settings);
  const retries = registration.metadata.retryOptions?.maxRetryCount ?? 0;
  const firstDelayMs = Math.min(
    2000,
    (registration.metadata.retryOptions?.minimumInterval?.seconds ?? 1) * 1000,
  );
  let stopping = false;
  const stopRequested = () => stopping; // a call: TypeScript would narrow a plain read across the await
  let onStop: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => (onStop = resolve));
  const consumer = source.consume(group, options.maxBatch, async (batch, partitionId) => {
    for (let attempt = 0; ; attempt++) {
      try {
        const context = new InvocationContext({
          functionName: name,
          invocationId: randomUUID(),
          triggerMetadata: triggerMetadata(source, group, partitionId, batch),
          retryContext: { retryCount: attempt, maxRetryCount: retries },
          logHandler: (level, ...args) => {
            log(`[${name}] ${formatLogArgs(args)}`, levelOfHost(level));
          },
        });
        await registration.callback(deliveredBodies(batch, binding.dataType), context);
        return;
      } catch (error) {
        log(`[${name}] partition ${partitionId} attempt ${attempt + 1} failed: ${formatError(error)}`);
        // At-least-once with the function's retry policy; after the last retry the host moves on.
        if (attempt >= retries || stopRequested()) return;
        await Promise.race([sleep(firstDelayMs * 2 ** attempt), stopped]); // stopping cuts a backoff short
        if (stopRequested()) return;
      }
    }
  });
  return {
    stop: () => {
      stopping = true;
      onStop();
      return consumer.stop();
    },
  };
}
