// What the Functions host hands an Event Hub trigger reading the IoT Hub built-in endpoint; shared by the
// tests and the benchmark.

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

/**
 * Builds the arguments the v4 library hands an Event Hub trigger with `cardinality: 'many'` for the IoT Hub
 * built-in endpoint: bodies plus trigger metadata, with the first letter of every key lower-cased.
 */
export function iotHubBatch(
  messages: readonly TestMessage[],
  partitionId = '0',
): { bodies: unknown[]; triggerMetadata: Record<string, unknown> } {
  const enqueued = messages.map(
    (m) => m.enqueuedTime ?? new Date(BASE + m.sequenceNumber * 1000).toISOString(),
  );
  return {
    bodies: messages.map((m) => m.body),
    triggerMetadata: {
      partitionContext: { eventHubName: 'iothub-events', consumerGroup: 'ingest', partitionId },
      sequenceNumberArray: messages.map((m) => m.sequenceNumber),
      offsetArray: messages.map((m) => String(m.sequenceNumber * 1024)),
      enqueuedTimeUtcArray: enqueued,
      partitionKeyArray: messages.map(() => null),
      propertiesArray: messages.map((m) => m.properties ?? {}),
      systemPropertiesArray: messages.map((m, i) => ({
        ...(m.deviceId === undefined ? {} : { 'iothub-connection-device-id': m.deviceId }),
        'iothub-connection-auth-method': '{"scope":"device","type":"sas","issuer":"iothub"}',
        'iothub-enqueuedtime': enqueued[i],
        'iothub-message-source': 'Telemetry',
        'x-opt-sequence-number': m.sequenceNumber,
        'x-opt-offset': String(m.sequenceNumber * 1024),
        'x-opt-enqueued-time': enqueued[i],
      })),
    },
  };
}
