import { z } from 'zod';
import { parseRequest, queryParameters, type ApiRequest, type ApiResponse } from '../shared/api-request.js';
import { AlarmNotFoundError } from '../shared/errors.js';
import type { AlarmStore } from './alarms.js';

/**
 * What an alarm id can look like: the store builds them from storage keys (`{device}|{rule}|{windowEnd}`, see
 * toStorageKey), printable ASCII without '/', '\\', '?', '#' or spaces, within Cosmos DB's 1,023-byte id limit.
 * Anything else names no alarm (404) and is never sent to the store, which would refuse it as an id.
 */
const ALARM_ID = /^[\x21-\x7e]{1,1023}$/;
const NOT_IN_IDS = /[/\\?#]/;

const alarmId = (request: ApiRequest): string => {
  const id = request.params.id ?? '';
  if (!ALARM_ID.test(id) || NOT_IN_IDS.test(id))
    throw new AlarmNotFoundError(id.length > 200 ? `${id.slice(0, 200)}…` : id);
  return id;
};

export const listSchema = z.strictObject({
  deviceId: z.string().min(1).max(128).optional(),
  status: z.enum(['open', 'acknowledged', 'closed']).optional(),
  notification: z
    .enum(['pending', 'notifying', 'sent', 'logged', 'undeliverable'])
    .optional()
    .describe(
      'Notification state; `pending` lists the alerts not yet delivered (the outbox redeliverAlerts works through)',
    ),
  top: z.coerce.number().int().min(1).max(1000).default(100),
  continuationToken: z.string().min(1).optional(),
});

/** `GET /api/alarms` (`?notification=pending`: the alerts' outbox), `POST /api/alarms/{id}/acknowledge`, `POST /api/alarms/{id}/close`. */
export function makeAlarmHandlers(alarms: AlarmStore) {
  const transition =
    (to: 'acknowledged' | 'closed') =>
    async (request: ApiRequest): Promise<ApiResponse> => ({
      status: 200,
      jsonBody: await alarms.transition(alarmId(request), to),
    });
  return {
    listAlarms: async (request: ApiRequest): Promise<ApiResponse> => {
      const { top, deviceId, status, notification, continuationToken } = parseRequest(
        listSchema,
        Object.fromEntries(queryParameters(request)),
      );
      const page = await alarms.list({
        top,
        ...(deviceId ? { deviceId } : {}),
        ...(status ? { status } : {}),
        ...(notification ? { notification } : {}),
        ...(continuationToken ? { continuationToken } : {}),
      });
      return {
        status: 200,
        jsonBody: { items: page.items, continuationToken: page.continuationToken ?? null },
      };
    },
    acknowledgeAlarm: transition('acknowledged'),
    closeAlarm: transition('closed'),
  };
}
