/**
 * Response schemas of the device, alarm and meta routes: the shapes the handlers answer with, written once as zod
 * so the OpenAPI document is generated from them (src/http/openapi-generator.ts) and tests validate real answers
 * against it. Request schemas stay beside their handlers; `.meta({ id })` names a component of the document.
 */
import { z } from 'zod';

/** An ISO 8601 date-time (the document says `format: date-time`). */
export const dateTime = () => z.iso.datetime({ offset: true });

const metadata = z
  .record(z.string(), z.unknown())
  .meta({ additionalProperties: true })
  .describe('Descriptive metadata, never secrets');
const base64Key = () => z.string().describe('base64 of 16-64 bytes');
/** A device's key pair (only registration and reset-credentials answer with it). */
export const keysSchema = z.strictObject({ primaryKey: base64Key(), secondaryKey: base64Key() });

const deviceShape = {
  id: z.string(),
  status: z.enum(['enabled', 'disabled']),
  metadata,
  createdAt: dateTime(),
  updatedAt: dateTime(),
};
export const deviceSchema = z.strictObject(deviceShape).meta({ id: 'Device' });
export const registeredDeviceSchema = z
  .strictObject({ ...deviceShape, keys: keysSchema, connectionString: z.string() })
  .meta({ id: 'RegisteredDevice' });
export const credentialsSchema = z
  .strictObject({ id: z.string(), keys: keysSchema, connectionString: z.string() })
  .meta({ id: 'Credentials' });
export const twinSchema = z
  .strictObject({
    deviceId: z.string(),
    desired: z.record(z.string(), z.unknown()),
    reported: z.record(z.string(), z.unknown()),
  })
  .meta({ id: 'Twin' });

/** GET /devices: a page of catalog entries. */
export const devicePageSchema = z.strictObject({
  items: z.array(deviceSchema),
  continuationToken: z.string().nullable(),
});

const fieldValueSchema = z
  .looseObject({
    value: z.unknown(),
    timestamp: dateTime(),
    timeSource: z.enum(['device', 'enqueued']),
    sequenceNumber: z.number().int(),
    recordIndex: z.number().int(),
    version: z.string().optional(),
  })
  .meta({ id: 'FieldValue' });
const fieldMap = () => z.record(z.string(), fieldValueSchema);
export const deviceStateSchema = z
  .looseObject({
    deviceId: z.string(),
    sequenceNumbers: z.record(z.string(), z.number().int()),
    firstSeen: dateTime(),
    lastSeen: dateTime(),
    counts: z.looseObject({
      messages: z.number().int(),
      records: z.record(z.string(), z.number().int()),
    }),
    telemetry: fieldMap(),
    diagnostics: fieldMap(),
    metadata: fieldMap(),
  })
  .meta({ id: 'DeviceState' });

const notificationStates = [
  'pending',
  'notifying',
  'sent',
  'logged',
  'undeliverable',
] as const satisfies readonly string[];
export const alarmSchema = z
  .looseObject({
    id: z.string(),
    deviceId: z.string(),
    rule: z.string(),
    kind: z.enum(['threshold', 'spike', 'dip', 'changepoint', 'unknown']),
    metric: z.string(),
    status: z.enum(['open', 'acknowledged', 'closed']),
    count: z.number().int().min(1),
    firstWindowEnd: dateTime(),
    lastWindowEnd: dateTime(),
    lastValue: z.number().optional(),
    lastScore: z.number().optional(),
    threshold: z.number().optional(),
    notification: z
      .enum(notificationStates)
      .describe(
        'pending: to be delivered (the outbox); notifying: claimed by a sender until notifyingUntil; sent/logged: delivered; undeliverable: refused for good or pending past the redelivery horizon',
      ),
    lastNotifiedAt: dateTime().optional(),
    pendingSince: dateTime().optional(),
    deliveryAttempts: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe('Failed attempts of the pending notification'),
    nextAttemptAt: dateTime().optional().describe('Not retried before (back-off)'),
    lastDeliveryError: z.string().optional().describe("The channel's last answer (no secrets)"),
    notifyingUntil: dateTime().optional(),
    notifyingLease: z.string().optional(),
  })
  .meta({ id: 'Alarm' });

/** GET /alarms: a page of alarms. */
export const alarmPageSchema = z.looseObject({
  items: z.array(alarmSchema),
  continuationToken: z.string().nullable(),
});

const dependencyStatus = () => z.enum(['ok', 'unavailable']);
export const healthReportSchema = z
  .strictObject({
    status: dependencyStatus(),
    checkedAt: dateTime(),
    dependencies: z.array(
      z.strictObject({
        name: z.enum(['cosmos', 'blob', 'identityStore', 'slack']),
        status: dependencyStatus(),
        latencyMs: z.number().int().min(0).describe('Time to the answer or timeout, ms'),
        reason: z.enum(['timeout', 'error']).optional(),
      }),
    ),
  })
  .meta({ id: 'HealthReport' });

/** RFC 9457 problem details, as src/http/problem.ts writes them. */
export const problemSchema = z
  .looseObject({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string().optional(),
    instance: z.string().optional(),
    errors: z.array(z.looseObject({ path: z.string(), message: z.string() })).optional(),
  })
  .meta({ id: 'Problem' });
