// The one builder of what the Functions host hands an Event Hub trigger (`cardinality: 'many'`): used by the
// embedded runtime's trigger driver (tools/local-runtime/event-hubs.ts, from the events @azure/event-hubs
// received), the tests and the benchmarks.
import type { ReceivedEventData } from '@azure/event-hubs';

/** One event as the trigger metadata describes it. */
export interface TriggerEvent {
  sequenceNumber: number;
  offset: string;
  enqueuedTime: string;
  properties: Record<string, unknown>;
  systemProperties: Record<string, unknown>;
  /** The partition key the sender gave (`x-opt-partition-key`), if any. */
  partitionKey?: string | null;
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
    partitionKeyArray: batch.map((e) => e.partitionKey ?? null),
    propertiesArray: batch.map((e) => e.properties),
    systemPropertiesArray: batch.map((e) => e.systemProperties),
  };
}

/** The names the host (.NET `EventData.SystemProperties`) gives the AMQP message properties. */
const AMQP_PROPERTY_NAMES: Record<string, string> = {
  messageId: 'message-id',
  userId: 'user-id',
  to: 'to',
  subject: 'subject',
  replyTo: 'reply-to',
  correlationId: 'correlation-id',
  contentType: 'content-type',
  contentEncoding: 'content-encoding',
  absoluteExpiryTime: 'absolute-expiry-time',
  creationTime: 'creation-time',
  groupId: 'group-id',
  groupSequence: 'group-sequence',
  replyToGroupId: 'reply-to-group-id',
};

/** A timestamp as the host serializes a DateTime into trigger metadata (ISO 8601); anything else as it is. */
const metadataValue = (value: unknown): unknown => (value instanceof Date ? value.toISOString() : value);

/**
 * One event received with @azure/event-hubs as the host describes it: its system properties are the message
 * annotations as sent and stamped (`iothub-*`, `x-opt-sequence-number`, `x-opt-offset`, `x-opt-enqueued-time`,
 * `x-opt-partition-key`) and the AMQP properties under the host's names (`message-id`, `content-type`, …).
 */
export function triggerEventOf(event: ReceivedEventData): TriggerEvent {
  const raw = event.getRawAmqpMessage();
  const systemProperties: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw.messageAnnotations ?? {}))
    systemProperties[key] = metadataValue(value);
  for (const [key, value] of Object.entries(raw.properties ?? {})) {
    const name = AMQP_PROPERTY_NAMES[key];
    if (name !== undefined && value !== undefined && value !== null)
      systemProperties[name] = metadataValue(value);
  }
  const properties: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw.applicationProperties ?? {}))
    properties[key] = metadataValue(value);
  return {
    sequenceNumber: event.sequenceNumber,
    offset: event.offset,
    enqueuedTime: event.enqueuedTimeUtc.toISOString(),
    properties,
    systemProperties,
    partitionKey: event.partitionKey,
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
