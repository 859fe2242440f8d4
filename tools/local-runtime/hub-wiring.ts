/**
 * The runtime's Event Hubs, all reached with @azure/event-hubs: the app's Event Hub triggers, the producer the
 * device gateway publishes telemetry with, and the local rule evaluator (asa/anomalies.asaql's threshold rules)
 * reading the IoT Hub events hub (consumer group `asa`) and writing anomaly records to the anomalies hub, as
 * Stream Analytics does in Azure. The gateway's producer and the rule evaluator (startIotHubFeed) serve the
 * embedded runtime and, beside `func start`, tools/local-runtime/iothub-side.ts alike.
 */
import type { EventHubProducerClient, ReceivedEventData } from '@azure/event-hubs';
import type { RuleOutput } from '../../src/alerts/rules.js';
import {
  connectionIsSet,
  describeTarget,
  isLocalEmulatorConnection,
  producerFor,
  resolveEventHubTarget,
  type EventHubTarget,
} from './event-hub-connection.js';
import {
  bodyBytes,
  consumeEventHub,
  startEventHubTrigger,
  triggerBinding,
  type Registration,
  type RunningConsumer,
} from './event-hubs.js';
import type { Logger } from './invocation-log.js';
import { formatError } from './log-format.js';
import type { RetryOptions } from './retry-policy.js';
import { LocalRuleEvaluator } from './rule-evaluator.js';

/** The IoT Hub events hub of the local endpoint (tools/local-eventhubs/config.ts). */
export const LOCAL_IOTHUB_EVENTS_HUB = 'iothub-events';

/** The local endpoint the services started (the device gateway always publishes there). */
export interface LocalEventHubsEndpoint {
  /** Its connection string without EntityPath. */
  connectionString: string;
  /** Events it keeps in memory (RuntimeMemory.hubEvents). */
  retained: () => number;
}

export interface HubWiringOptions extends IotHubFeedOptions {
  /** The app's `eventHubTrigger` registrations. */
  triggers: readonly Registration[];
  /** host.json `retry`, for a trigger that registers no retry policy. */
  hostRetry?: RetryOptions;
}

export interface HubWiring {
  /** The producer the device gateway publishes telemetry with (the IoT Hub events hub). */
  telemetry: EventHubProducerClient;
  /** How many consumers were started (the app's triggers and the rule evaluator). */
  consumers: number;
  /** Events the local endpoint keeps, and the rule evaluator's sizes (RuntimeMemory). */
  memory(): { hubEvents: number; rules: ReturnType<LocalRuleEvaluator['size']> };
  /** Stops every consumer (running batches finish and checkpoint). */
  stopConsumers(): Promise<void>;
  /** Closes the producers (after the consumers stopped). */
  close(): Promise<void>;
}

/** One reading for the rule evaluator: the device, the reading's own time (else enqueued time) and values. */
export function reading(event: ReceivedEventData) {
  const rawId: unknown = event.getRawAmqpMessage().messageAnnotations?.['iothub-connection-device-id'];
  const deviceId = typeof rawId === 'string' ? rawId : '';
  let values: unknown;
  try {
    values = JSON.parse(bodyBytes(event).toString('utf8'));
  } catch {
    return undefined;
  }
  if (!deviceId || typeof values !== 'object' || values === null || Array.isArray(values)) return undefined;
  const record = values as Record<string, unknown>;
  const given = typeof record.ts === 'string' ? record.ts : record.timestamp;
  const stamp = Date.parse(typeof given === 'string' ? given : '');
  const time = Number.isFinite(stamp) ? stamp : event.enqueuedTimeUtc.getTime();
  return { deviceId, time, values: record };
}

/** Sends anomaly records, each device's with its id as partition key (one batch per device). */
async function sendAnomalies(producer: EventHubProducerClient, outputs: readonly RuleOutput[]) {
  const byDevice = new Map<string, RuleOutput[]>();
  for (const output of outputs)
    byDevice.set(output.deviceId, [...(byDevice.get(output.deviceId) ?? []), output]);
  for (const [deviceId, records] of byDevice)
    await producer.sendBatch(
      records.map((record) => ({ body: record, contentType: 'application/json' })),
      { partitionKey: deviceId },
    );
}

/** The local rule evaluator: reads the IoT Hub events hub, sends each anomaly once the batch is evaluated. */
async function startRuleEvaluator(
  options: IotHubFeedOptions,
  source: EventHubTarget,
  anomalies: EventHubProducerClient,
  evaluator: LocalRuleEvaluator,
): Promise<RunningConsumer> {
  const { log } = options;
  return consumeEventHub({
    target: source,
    consumerGroup: options.settings.LocalRules__ConsumerGroup ?? 'asa',
    storageConnectionString: options.settings.AzureWebJobsStorage ?? '',
    maxBatch: options.maxBatch,
    log,
    name: 'rule evaluator',
    handle: async (batch, { stopping, stopped }) => {
      const outputs: RuleOutput[] = [];
      for (const event of batch) {
        const input = reading(event);
        if (input) for (const output of evaluator.add(input)) outputs.push(output);
      }
      // The checkpoint follows the send (at-least-once). A send that fails is retried until it succeeds or the
      // run stops (then the batch stays unchecked and is evaluated again on the next start), as Stream Analytics
      // keeps retrying an output it cannot write: an anomaly is never passed over.
      for (let attempt = 1; outputs.length > 0; attempt++) {
        try {
          await sendAnomalies(anomalies, outputs);
          break;
        } catch (error) {
          log(
            `rule evaluator: sending ${outputs.length} anomalies failed (attempt ${attempt}): ${formatError(error)}`,
            'warn',
          );
          if (stopping()) return false;
          const backoff = Math.min(30_000, 1000 * 2 ** Math.min(attempt - 1, 5));
          await Promise.race([new Promise((resolve) => setTimeout(resolve, backoff)), stopped]); // stop cuts it short
          if (stopping()) return false;
        }
      }
      return true;
    },
  });
}

export interface IotHubFeedOptions {
  settings: Record<string, string>;
  /** host.json `extensions.eventHubs.maxEventBatchSize` (the rule evaluator's batches). */
  maxBatch: number;
  /** The local endpoint; without it the gateway publishes to `IotHubEventsConnection` / `IotHubEventHubName`. */
  localEventHubs?: LocalEventHubsEndpoint;
  log: Logger;
}

/** What feeds the hubs the app's triggers consume: IoT Hub's device side and Stream Analytics, locally. */
export interface IotHubFeed {
  /** The producer the device gateway publishes telemetry with (the IoT Hub events hub). */
  telemetry: EventHubProducerClient;
  /** Where IoT Hub events are consumed from (the app's ingestTelemetry and the rule evaluator). */
  iotHub: EventHubTarget;
  /** Whether `iotHub` is a real IoT Hub (not the local endpoint the gateway publishes to). */
  real: boolean;
  /** The rule evaluator's consumer. */
  rules: RunningConsumer;
  /** The rule evaluator's sizes (RuntimeMemory.rules). */
  size(): ReturnType<LocalRuleEvaluator['size']>;
  /** Stops the rule evaluator (its running batch finishes and checkpoints). */
  stopConsumer(): Promise<void>;
  /** Closes the producers (after the consumers stopped). */
  close(): Promise<void>;
}

/**
 * The device gateway's producer and the local rule evaluator (iothub-events/`asa` → anomalies), the same for
 * the embedded runtime and beside `func start` (tools/local-runtime/iothub-side.ts).
 */
export async function startIotHubFeed(options: IotHubFeedOptions): Promise<IotHubFeed> {
  const { settings } = options;
  const iotHub = resolveEventHubTarget(
    settings,
    'IotHubEventsConnection',
    settings.IotHubEventHubName ?? LOCAL_IOTHUB_EVENTS_HUB,
  );
  const local = options.localEventHubs;
  const gatewayTarget: EventHubTarget = local
    ? {
        kind: 'connectionString',
        connectionString: local.connectionString,
        eventHubName: LOCAL_IOTHUB_EVENTS_HUB,
      }
    : iotHub;
  const real = !(iotHub.kind === 'connectionString' && isLocalEmulatorConnection(iotHub.connectionString));
  const anomaliesTarget = resolveEventHubTarget(
    settings,
    'AnomaliesEventHubConnection',
    settings.AnomaliesEventHubName ?? 'anomalies',
  );
  const telemetry = producerFor(gatewayTarget);
  const anomalies = producerFor(anomaliesTarget);
  const close = async () => {
    await Promise.all([telemetry.close(), anomalies.close()]);
  };
  const evaluator = new LocalRuleEvaluator();
  let rules: RunningConsumer;
  try {
    rules = await startRuleEvaluator(options, iotHub, anomalies, evaluator);
  } catch (error) {
    await close();
    throw error;
  }
  return {
    telemetry,
    iotHub,
    real,
    rules,
    size: () => evaluator.size(),
    stopConsumer: () => rules.stop(),
    close,
  };
}

/** Starts the app's Event Hub triggers, the gateway's producer and the rule evaluator. */
export async function startHubs(options: HubWiringOptions): Promise<HubWiring> {
  const { settings, maxBatch, log } = options;
  const local = options.localEventHubs;
  const feed = await startIotHubFeed(options);
  log(
    feed.real && local
      ? `IoT Hub events: ingestTelemetry and the rule evaluator consume ${describeTarget(feed.iotHub)} (IotHubEventsConnection); the device gateway publishes to the local endpoint`
      : `IoT Hub events: ${describeTarget(feed.iotHub)} (the device gateway publishes there, ingestTelemetry and the rule evaluator consume it)`,
  );
  const consumers: RunningConsumer[] = [];
  try {
    for (const registration of options.triggers) {
      const name = registration.metadata.name;
      if (/^(true|1)$/i.test(settings[`AzureWebJobs.${name}.Disabled`] ?? '')) {
        log(`${name} is disabled (AzureWebJobs.${name}.Disabled)`);
        continue;
      }
      const given = triggerBinding(registration)?.connection;
      const connection = typeof given === 'string' ? given : '';
      if (!connectionIsSet(settings, connection)) {
        // As the host: a trigger whose connection is missing does not start; the others do.
        log(`${name} not started: set ${connection} (or ${connection}__fullyQualifiedNamespace)`, 'warn');
        continue;
      }
      consumers.push(
        await startEventHubTrigger(registration, { settings, maxBatch, log, hostRetry: options.hostRetry }),
      );
    }
  } catch (error) {
    await Promise.all([...consumers.map((c) => c.stop()), feed.stopConsumer()]);
    await feed.close();
    throw error;
  }
  consumers.push(feed.rules);
  log(`Event Hubs: ${consumers.map((c) => c.source).join(', ')}`, 'debug');
  return {
    telemetry: feed.telemetry,
    consumers: consumers.length,
    memory: () => ({ hubEvents: local?.retained() ?? 0, rules: feed.size() }),
    stopConsumers: async () => {
      await Promise.all(consumers.map((c) => c.stop()));
    },
    close: () => feed.close(),
  };
}
