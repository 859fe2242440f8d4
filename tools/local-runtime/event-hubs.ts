/**
 * Event Hubs in the embedded local runtime: in-process hubs (partitions, sequence numbers, consumers that read
 * at their own pace) and the driver that serves an `eventHubTrigger` registration from them the way the Functions
 * host does: batches of `maxEventBatchSize`, the IoT Hub built-in endpoint's trigger metadata, the function's
 * retry policy (the host's delays, capped by `maximumInterval`: retry-policy.ts), and a checkpoint that moves
 * on after the last attempt even when it throws (at-least-once). Each partition is served by its own loop.
 */
import functions from '@azure/functions';
import { createHash, randomUUID } from 'node:crypto';
import { eventHubTriggerMetadata } from '../iothub-trigger-metadata.js';
import { resolveBindingExpression } from './binding-expressions.js';
import { levelOfHost, type Logger } from './invocation-log.js';
import { retrySchedule, type RetryOptions } from './retry-policy.js';
import { formatError, formatLogArgs } from './log-format.js';

const { InvocationContext } = functions;

/** A registration as `@azure/functions-core` receives it: binding metadata and the handler. */
export interface Registration {
  metadata: {
    name: string;
    bindings: Record<string, Record<string, unknown>>;
    retryOptions?: RetryOptions;
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

/**
 * Events a partition keeps at most, whether or not they were read: the local stand-in for an Event Hub's
 * retention (1 to 7 days in Azure). A consumer group further behind than this skips to the oldest kept event,
 * as a reader past the retention period does in Azure.
 */
export const MAX_RETAINED_PER_PARTITION = 50_000;

/** Where one consumer group reads a partition: the sequence number of the next event it reads. */
interface Reader {
  position: number;
}

/**
 * One partition: events in sequence-number order, trimmed once every consumer group reading it has checkpointed
 * them (and at MAX_RETAINED_PER_PARTITION), so a long run keeps only what someone still has to read.
 */
export class Partition {
  private events: (HubEvent | undefined)[] = [];
  /** Index in `events` of the oldest kept event (dropped ones are cleared, the array compacted now and then). */
  private head = 0;
  /** Sequence number of the oldest kept event. */
  first = 1;
  /** Sequence number the next event gets. */
  next = 1;
  readonly readers = new Set<Reader>();

  get size(): number {
    return this.next - this.first;
  }

  /** Numbers an empty partition's events from `sequenceNumber` on (a durable hub continuing a previous run). */
  startAt(sequenceNumber: number) {
    if (this.next !== this.first) throw new Error('a partition holding events cannot be renumbered');
    this.first = this.next = sequenceNumber;
  }

  append(event: HubEvent) {
    this.events.push(event);
    this.next++;
    if (this.size > MAX_RETAINED_PER_PARTITION) this.drop(this.size - MAX_RETAINED_PER_PARTITION);
  }

  /** Up to `max` kept events from sequence number `from` on. */
  read(from: number, max: number): HubEvent[] {
    const start = this.head + Math.max(0, from - this.first);
    return this.events.slice(start, start + Math.max(0, Math.min(max, this.next - from))) as HubEvent[];
  }

  /** The newest kept event. */
  last(): HubEvent | undefined {
    return this.next > this.first ? this.events[this.events.length - 1] : undefined;
  }

  /** Every kept event, oldest first. */
  *kept(): Generator<HubEvent> {
    for (let i = this.head; i < this.events.length; i++) {
      const event = this.events[i];
      if (event) yield event;
    }
  }

  /** Drops what every reader has checkpointed (nothing when nobody reads: retention alone applies then). */
  trim() {
    if (this.readers.size === 0) return;
    let checkpointed = this.next;
    for (const reader of this.readers) checkpointed = Math.min(checkpointed, reader.position);
    this.drop(checkpointed - this.first);
  }

  private drop(count: number) {
    if (count <= 0) return;
    this.events.fill(undefined, this.head, this.head + count);
    this.head += count;
    this.first += count;
    // Compact once the dropped prefix outweighs what is kept: amortised O(1) per event.
    if (this.head > 1024 && this.head * 2 > this.events.length) {
      this.events = this.events.slice(this.head);
      this.head = 0;
    }
  }
}

/** An in-process Event Hub: partitions, sequence numbers, and consumers that read at their own pace. */
export class LocalHub {
  protected readonly partitions: Partition[] = Array.from({ length: PARTITIONS }, () => new Partition());
  private readonly wakers = new Set<() => void>();

  constructor(readonly name: string) {}

  /** The partition a partition key maps to (a stable hash, as Event Hubs does). */
  static partitionOf(partitionKey: string): number {
    return createHash('sha256').update(partitionKey).digest().readUInt32BE(0) % PARTITIONS;
  }

  /** The events a partition keeps, oldest first. */
  events(partition: number): HubEvent[] {
    return [...(this.partitions[partition]?.kept() ?? [])];
  }

  /** Events kept in memory across all partitions (published and not yet checkpointed by every reader). */
  retained(): number {
    return this.partitions.reduce((sum, partition) => sum + partition.size, 0);
  }

  /**
   * Adds an event; an Event Hub carries bytes, so a string is UTF-8 encoded and anything else JSON-serialized.
   * `enqueuedTime` is given only for an event delivered again after a restart (it keeps its original time).
   */
  publish(
    body: unknown,
    partitionKey: string,
    properties: Record<string, unknown>,
    system: Record<string, unknown>,
    enqueuedTime = new Date().toISOString(),
  ) {
    const partition = this.partitions[LocalHub.partitionOf(partitionKey)] as Partition;
    const sequenceNumber = partition.next;
    partition.append({
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

  /** Where a consumer group starts reading a partition: the oldest kept event (a durable hub: after its checkpoint). */
  protected startPosition(_consumerGroup: string, partition: number): number {
    return this.partitions[partition]?.first ?? 1;
  }

  /**
   * Calls `handle` with each new batch of each partition, in order, until stopped (at-least-once). Each
   * partition has its own loop, as each partition has its own owner in Azure: a batch that fails and waits
   * for its retries holds back only the events behind it in its own partition. A consumer group starts at the
   * oldest kept event (the trigger's default, `initialOffsetOptions: fromStart`).
   */
  consume(
    consumerGroup: string,
    maxBatch: number,
    handle: (batch: HubEvent[], partitionId: string) => Promise<void>,
  ) {
    let stopped = false;
    const loops = this.partitions.map((partition, p) => {
      const reader: Reader = { position: this.startPosition(consumerGroup, p) };
      partition.readers.add(reader);
      let wake: () => void = () => undefined;
      const waker = () => {
        wake();
      };
      this.wakers.add(waker);
      const done = (async () => {
        while (!stopped) {
          reader.position = Math.max(reader.position, partition.first); // past retention: skip ahead
          if (reader.position >= partition.next) {
            await new Promise<void>((resolve) => (wake = resolve));
            continue;
          }
          const batch = partition.read(reader.position, maxBatch);
          await handle(batch, String(p));
          reader.position += batch.length; // the checkpoint
          partition.trim();
        }
      })();
      return { waker, done, reader, partition };
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
        for (const loop of loops) loop.partition.readers.delete(loop.reader);
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
  return eventHubTriggerMetadata({ eventHubName: hub.name, consumerGroup, partitionId }, batch);
}

export interface EventHubTriggerOptions {
  settings: Record<string, string>;
  /** The hub of a name (created on first use). */
  hub: (name: string) => LocalHub;
  /** host.json `extensions.eventHubs.maxEventBatchSize`. */
  maxBatch: number;
  log: Logger;
  /** Waits between attempts (ms); tests pass one that does not wait. */
  sleep?: (ms: number) => Promise<void>;
  /** host.json's `retry`: the policy of a function that registers none. */
  hostRetry?: RetryOptions;
  /** The randomization of exponential back-off, in [0, 1) (default Math.random; tests pin it). */
  random?: () => number;
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
  const group = resolveBindingExpression(binding.consumerGroup ?? '$Default', settings, name);
  const source = options.hub(resolveBindingExpression(binding.eventHubName, settings, name));
  const policy = registration.metadata.retryOptions ?? options.hostRetry;
  const retries = retrySchedule(policy).maxRetries;
  let stopping = false;
  const stopRequested = () => stopping; // a call: TypeScript would narrow a plain read across the await
  let onStop: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => (onStop = resolve));
  const consumer = source.consume(group, options.maxBatch, async (batch, partitionId) => {
    const schedule = retrySchedule(policy, options.random); // the host keeps one back-off state per batch
    for (let attempt = 0; ; attempt++) {
      try {
        const context = new InvocationContext({
          functionName: name,
          invocationId: randomUUID(),
          triggerMetadata: triggerMetadata(source, group, partitionId, batch),
          retryContext: { retryCount: attempt, maxRetryCount: policy?.maxRetryCount ?? 0 },
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
        await Promise.race([sleep(schedule.nextDelayMs()), stopped]); // stopping cuts a backoff short
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
