/**
 * The runtime's Event Hubs: the in-process hubs (durable with a data folder), the app's Event Hub triggers on
 * them, and the local rule evaluator (asa/anomalies.asaql's threshold rules) reading the IoT Hub events hub and
 * writing anomaly records to the anomalies hub, as Stream Analytics does in Azure.
 */
import { DurableLocalHub, localHub } from './durable-hubs.js';
import { startEventHubTrigger, type HubEvent, type LocalHub, type Registration } from './event-hubs.js';
import type { Logger } from './invocation-log.js';
import type { RetryOptions } from './retry-policy.js';
import { LocalRuleEvaluator } from './rule-evaluator.js';

export interface HubWiringOptions {
  settings: Record<string, string>;
  /** The app's `eventHubTrigger` registrations. */
  triggers: readonly Registration[];
  /** host.json `extensions.eventHubs.maxEventBatchSize`. */
  maxBatch: number;
  /** host.json `retry`, for a trigger that registers no retry policy. */
  hostRetry?: RetryOptions;
  /** Keeps the hubs' events here (`{folder}/<hub>.jsonl`); in memory without it. */
  hubsFolder: string | undefined;
  log: Logger;
}

export interface HubWiring {
  /** The IoT Hub built-in endpoint's hub (the device gateway publishes telemetry to it). */
  iotHub: LocalHub;
  /** How many consumers were started (the app's triggers and the rule evaluator). */
  consumers: number;
  /** Events kept by every hub, and the rule evaluator's sizes (RuntimeMemory). */
  memory(): { hubEvents: number; rules: ReturnType<LocalRuleEvaluator['size']> };
  /** Stops every consumer (running batches finish). */
  stopConsumers(): Promise<void>;
  /** Closes the durable hubs' files (after the consumers stopped). */
  close(): Promise<void>;
}

/** One reading for the rule evaluator: the device, the reading's own time (else enqueued time) and values. */
function reading(event: HubEvent) {
  const rawId = event.systemProperties['iothub-connection-device-id'];
  const deviceId = typeof rawId === 'string' ? rawId : '';
  let values: unknown;
  try {
    values = JSON.parse(event.body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (!deviceId || typeof values !== 'object' || values === null || Array.isArray(values)) return undefined;
  const record = values as Record<string, unknown>;
  const given = typeof record.ts === 'string' ? record.ts : record.timestamp;
  const stamp = Date.parse(typeof given === 'string' ? given : '');
  const time = Number.isFinite(stamp) ? stamp : Date.parse(event.enqueuedTime);
  return { deviceId, time, values: record };
}

/** Creates the hubs, starts the triggers and the rule evaluator on them. */
export function startHubs(options: HubWiringOptions): HubWiring {
  const { settings, maxBatch, log } = options;
  const hubs = new Map<string, LocalHub>();
  const hub = (name: string) => {
    let found = hubs.get(name);
    if (!found) hubs.set(name, (found = localHub(name, options.hubsFolder, log)));
    return found;
  };
  const consumers: { stop: () => Promise<void> }[] = options.triggers.map((registration) =>
    startEventHubTrigger(registration, { settings, hub, maxBatch, log, hostRetry: options.hostRetry }),
  );
  const iotHub = hub(settings.IotHubEventHubName ?? 'iothub-events');
  const anomalies = hub(settings.AnomaliesEventHubName ?? 'anomalies');
  const evaluator = new LocalRuleEvaluator();
  consumers.push(
    iotHub.consume('asa', maxBatch, async (batch) => {
      for (const event of batch) {
        const input = reading(event);
        if (!input) continue;
        for (const output of evaluator.add(input)) anomalies.publish(output, output.deviceId, {}, {});
      }
      return Promise.resolve();
    }),
  );
  return {
    iotHub,
    consumers: consumers.length,
    memory: () => ({
      hubEvents: [...hubs.values()].reduce((sum, h) => sum + h.retained(), 0),
      rules: evaluator.size(),
    }),
    stopConsumers: async () => {
      await Promise.all(consumers.map((c) => c.stop()));
    },
    close: async () => {
      for (const h of hubs.values()) if (h instanceof DurableLocalHub) await h.close();
    },
  };
}
