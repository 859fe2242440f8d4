// The one builder of what the Functions host hands an Event Hub trigger (`cardinality: 'many'`): used by the
// embedded runtime's hubs (tools/local-runtime/event-hubs.ts), the tests and the benchmarks.

/** One event as the trigger metadata describes it. */
export interface TriggerEvent {
  sequenceNumber: number;
  offset: string;
  enqueuedTime: string;
  properties: Record<string, unknown>;
  systemProperties: Record<string, unknown>;
}

/** The trigger metadata of one batch, with the first letter of every key lower-cased (v4 library casing). */
export function eventHubTriggerMetadata(
  partitionContext: { eventHubName: string; consumerGroup: string; partitionId: string },
  batch: readonly TriggerEvent[],
) {
  return {
    partitionContext,
    sequenceNumberArray: batch.map((e) => e.sequenceNumber),
    offsetArray: batch.map((e) => e.offset),
    enqueuedTimeUtcArray: batch.map((e) => e.enqueuedTime),
    partitionKeyArray: batch.map(() => null),
    propertiesArray: batch.map((e) => e.properties),
    systemPropertiesArray: batch.map((e) => e.systemProperties),
  };
}

/** One device message as a test or benchmark describes it. */
export interface TestMessage {
  deviceId?: string;
  body: unknown;
  sequenceNumber: number;
  /** ISO time; defaults to a fixed instant plus the sequence number in seconds. */
  enqueuedTime?: string;
  properties?: Record<string, unknown>;
}

const BASE = Date.UTC(2026, 10, 23, 10, 0, 0);

/** A test message as the IoT Hub built-in endpoint delivers it (the system properties IoT Hub stamps). */
function iotHubEvent(m: TestMessage): TriggerEvent {
  const enqueuedTime = m.enqueuedTime ?? new Date(BASE + m.sequenceNumber * 1000).toISOString();
  const offset = String(m.sequenceNumber * 1024);
  return {
    sequenceNumber: m.sequenceNumber,
    offset,
    enqueuedTime,
    properties: m.properties ?? {},
    systemProperties: {
      ...(m.deviceId === undefined ? {} : { 'iothub-connection-device-id': m.deviceId }),
      'iothub-connection-auth-method': '{"scope":"device","type":"sas","issuer":"iothub"}',
      'iothub-enqueuedtime': enqueuedTime,
      'iothub-message-source': 'Telemetry',
      'x-opt-sequence-number': m.sequenceNumber,
      'x-opt-offset': offset,
      'x-opt-enqueued-time': enqueuedTime,
    },
  };
}

/**
 * Builds the arguments the v4 library hands an Event Hub trigger with `cardinality: 'many'` for the IoT Hub
 * built-in endpoint: bodies plus trigger metadata.
 */
export function iotHubBatch(
  messages: readonly TestMessage[],
  partitionId = '0',
): { bodies: unknown[]; triggerMetadata: Record<string, unknown> } {
  return {
    bodies: messages.map((m) => m.body),
    triggerMetadata: eventHubTriggerMetadata(
      { eventHubName: 'iothub-events', consumerGroup: 'ingest', partitionId },
      messages.map(iotHubEvent),
    ),
  };
}
