import { InvocationContext } from '@azure/functions';

/** One device message as a test describes it. */
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
  const enqueued = messages.map((m) => m.enqueuedTime ?? new Date(BASE + m.sequenceNumber * 1000).toISOString());
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

/** The library's real InvocationContext, recording what the handler logged. */
export function testContext(
  triggerMetadata: Record<string, unknown>,
  retryContext?: { retryCount: number; maxRetryCount: number },
): InvocationContext & { logs: string[] } {
  const logs: string[] = [];
  const context = new InvocationContext({
    functionName: 'ingestTelemetry',
    triggerMetadata,
    ...(retryContext ? { retryContext } : {}),
    logHandler: (level, ...args) => {
      logs.push(`${level}: ${args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ')}`);
    },
  });
  return Object.assign(context, { logs });
}
