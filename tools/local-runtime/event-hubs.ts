/**
 * The embedded runtime's Event Hub trigger driver: serves an `eventHubTrigger` registration from an Event Hub
 * (the local AMQP endpoint, or a real namespace) with @azure/event-hubs the way the Functions host does:
 * `EventHubConsumerClient` with greedy load balancing and a blob checkpoint store in `AzureWebJobsStorage`,
 * batches of `maxEventBatchSize`, a new consumer group reading from the start (`initialOffsetOptions:
 * fromStart`), the IoT Hub built-in endpoint's trigger metadata, the function's retry policy (the host's
 * delays, capped by `maximumInterval`: retry-policy.ts), and a checkpoint after the invocation, also after the
 * last failed attempt (at-least-once: the host moves on). Each partition is served by its own pump.
 */
import {
  earliestEventPosition,
  type CheckpointStore,
  type EventHubConsumerClient,
  type PartitionContext,
  type ReceivedEventData,
  type Subscription,
} from '@azure/event-hubs';
import functions from '@azure/functions';
import { randomUUID } from 'node:crypto';
import { eventHubTriggerMetadata, triggerEventOf } from '../iothub-trigger-metadata.js';
import { resolveBindingExpression } from './binding-expressions.js';
import {
  checkpointStoreFor,
  consumerFor,
  describeTarget,
  resolveEventHubTarget,
  type EventHubTarget,
} from './event-hub-connection.js';
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

/** An event's bytes: what the sender put in its data section (a value or sequence body is JSON-encoded). */
export function bodyBytes(event: Pick<ReceivedEventData, 'body'>): Buffer {
  const body: unknown = event.body;
  if (Buffer.isBuffer(body)) return body;
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  return Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
}

/**
 * The handler's first argument for a batch, as the host builds it for the trigger's `dataType`: `binary` gives
 * the bytes, `string` the text, and no dataType (or any other) JSON-parses every body, which fails the whole
 * invocation if one body is not JSON, before the handler runs ("Binding parameters to complex objects … uses
 * Json.NET serialization"; azure-functions-nodejs-library #187/#340). Modelled so a regression shows up locally.
 */
export function deliveredBodies(
  batch: readonly { body: Buffer; sequenceNumber: number }[],
  dataType: unknown,
): unknown[] {
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

export interface EventHubTriggerOptions {
  /** App settings: the binding's %expressions%, its connection, and `AzureWebJobsStorage` for checkpoints. */
  settings: Record<string, string>;
  /** host.json `extensions.eventHubs.maxEventBatchSize`. */
  maxBatch: number;
  log: Logger;
  /** Waits between attempts (ms); tests pass one that does not wait. */
  sleep?: (ms: number) => Promise<void>;
  /** host.json's `retry`: the policy of a function that registers none. */
  hostRetry?: RetryOptions;
  /** The randomization of exponential back-off, in [0, 1) (default Math.random; tests pin it). */
  random?: () => number;
  /** Longest wait for a batch to fill before a smaller one is handed over (seconds; default 1). */
  maxWaitTimeInSeconds?: number;
}

/** A running consumer: `stop()` lets the batches being handled finish and checkpoint, then closes the client. */
export interface RunningConsumer {
  /** Where it reads (namespace/hub and consumer group), for logs. */
  source: string;
  stop(): Promise<void>;
}

/** What a batch handler gets besides the events. */
export interface BatchContext {
  partitionId: string;
  /** True once stopping: a handler waiting to retry gives up. */
  stopping: () => boolean;
  /** Resolves when stopping begins (cuts a back-off short). */
  stopped: Promise<void>;
}

/** Host-like load balancing: claim every free partition at once; a crashed owner's claim lapses after 10 s. */
const LOAD_BALANCING = {
  strategy: 'greedy',
  updateIntervalInMs: 2_000,
  partitionOwnershipExpirationIntervalInMs: 10_000,
} as const;

/**
 * Consumes `target` with consumer group `consumerGroup` until stopped: every non-empty batch goes to `handle`,
 * then the checkpoint moves to its last event (unless `handle` says otherwise: it deals with its own failures).
 */
export async function consumeEventHub(options: {
  target: EventHubTarget;
  consumerGroup: string;
  storageConnectionString: string;
  maxBatch: number;
  maxWaitTimeInSeconds?: number;
  log: Logger;
  /** Who consumes, for logs. */
  name: string;
  /** Handles a batch; `false` leaves it unchecked (a retry cut short by stopping: the next start reads it again). */
  handle: (batch: ReceivedEventData[], context: BatchContext) => Promise<boolean>;
}): Promise<RunningConsumer> {
  const { target, consumerGroup, log, name } = options;
  const store: CheckpointStore = await checkpointStoreFor(options.storageConnectionString, target);
  const client: EventHubConsumerClient = consumerFor(target, consumerGroup, store, {
    loadBalancingOptions: LOAD_BALANCING,
  });
  let stopping = false;
  let onStop: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => (onStop = resolve));
  const inFlight = new Set<Promise<void>>();
  const processBatch = async (events: ReceivedEventData[], partition: PartitionContext) => {
    // An empty batch is the pump's "nothing within maxWaitTime"; a batch received while stopping is left
    // unhandled and unchecked: the next start reads it again.
    const last = events.at(-1);
    if (last === undefined || stopping) return;
    const context = { partitionId: partition.partitionId, stopping: () => stopping, stopped };
    if (!(await options.handle(events, context))) return;
    try {
      await partition.updateCheckpoint(last);
    } catch (error) {
      // The batch was handled; without its checkpoint it is delivered again after a restart (at-least-once).
      log(`[${name}] partition ${partition.partitionId}: checkpoint failed: ${formatError(error)}`, 'warn');
    }
  };
  const subscription: Subscription = client.subscribe(
    {
      processEvents: (events, partition) => {
        const run = processBatch(events, partition);
        const settled = run.catch((error: unknown) => {
          log(
            `[${name}] partition ${partition.partitionId}: ${formatError(error)}; the batch is read again from the last checkpoint`,
            'error',
          );
        });
        inFlight.add(settled);
        void settled.finally(() => inFlight.delete(settled));
        // Rethrown: the SDK stops this partition's pump and starts it again from the last checkpoint, so a batch
        // that failed outside the handler's own retries is never passed over by the next batch's checkpoint.
        return run;
      },
      processError: (error, partition) => {
        if (stopping) return Promise.resolve();
        const where = partition.partitionId ? `partition ${partition.partitionId}` : 'load balancing';
        log(`[${name}] ${consumerGroup} ${where}: ${formatError(error)}`, 'warn');
        return Promise.resolve();
      },
    },
    {
      maxBatchSize: options.maxBatch,
      maxWaitTimeInSeconds: options.maxWaitTimeInSeconds ?? 1,
      startPosition: earliestEventPosition,
      skipParsingBodyAsJson: true,
    },
  );
  return {
    source: `${describeTarget(target)} (${consumerGroup})`,
    stop: async () => {
      if (stopping) return;
      stopping = true;
      onStop();
      // Batches being handled finish and checkpoint before the partitions are given up.
      await Promise.all([...inFlight]);
      await subscription.close();
      await client.close();
    },
  };
}

/** Serves one `eventHubTrigger` registration until stopped. */
export async function startEventHubTrigger(
  registration: Registration,
  options: EventHubTriggerOptions,
): Promise<RunningConsumer> {
  const { settings, log } = options;
  const name = registration.metadata.name;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const binding = triggerBinding(registration) ?? {};
  const group = resolveBindingExpression(binding.consumerGroup ?? '$Default', settings, name);
  const hubName = resolveBindingExpression(binding.eventHubName, settings, name);
  const connection = typeof binding.connection === 'string' ? binding.connection : '';
  const target = resolveEventHubTarget(settings, connection, hubName);
  const policy = registration.metadata.retryOptions ?? options.hostRetry;
  const retries = retrySchedule(policy).maxRetries;
  return consumeEventHub({
    target,
    consumerGroup: group,
    storageConnectionString: settings.AzureWebJobsStorage ?? '',
    maxBatch: options.maxBatch,
    ...(options.maxWaitTimeInSeconds === undefined
      ? {}
      : { maxWaitTimeInSeconds: options.maxWaitTimeInSeconds }),
    log,
    name,
    handle: async (events, { partitionId, stopping, stopped }) => {
      const schedule = retrySchedule(policy, options.random); // the host keeps one back-off state per batch
      for (let attempt = 0; ; attempt++) {
        try {
          // Built inside the attempt: a batch whose metadata cannot be built fails its invocation, as in the host.
          const batch = events.map((event) => ({ ...triggerEventOf(event), body: bodyBytes(event) }));
          const metadata = eventHubTriggerMetadata(
            { eventHubName: target.eventHubName, consumerGroup: group, partitionId },
            batch,
          );
          const context = new InvocationContext({
            functionName: name,
            invocationId: randomUUID(),
            triggerMetadata: metadata,
            retryContext: { retryCount: attempt, maxRetryCount: policy?.maxRetryCount ?? 0 },
            logHandler: (level, ...args) => {
              log(`[${name}] ${formatLogArgs(args)}`, levelOfHost(level));
            },
          });
          await registration.callback(deliveredBodies(batch, binding.dataType), context);
          return true;
        } catch (error) {
          log(`[${name}] partition ${partitionId} attempt ${attempt + 1} failed: ${formatError(error)}`);
          // At-least-once with the function's retry policy; after the last retry the host moves on.
          if (attempt >= retries) return true;
          if (stopping()) return false;
          await Promise.race([sleep(schedule.nextDelayMs()), stopped]); // stopping cuts a backoff short
          if (stopping()) return false;
        }
      }
    },
  });
}
