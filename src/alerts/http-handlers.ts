import { z } from 'zod';
import { parseRequest, queryParameters, type ApiRequest, type ApiResponse } from '../shared/api-request.js';
import type { AlarmStore } from './alarms.js';

const listSchema = z.strictObject({
  deviceId: z.string().min(1).max(128).optional(),
  status: z.enum(['open', 'acknowledged', 'closed']).optional(),
  notification: z.enum(['pending', 'notifying', 'sent', 'logged', 'undeliverable']).optional(),
  top: z.coerce.number().int().min(1).max(1000).default(100),
  continuationToken: z.string().min(1).optional(),
});

/** `GET /api/alarms` (`?notification=pending`: the alerts' outbox), `POST /api/alarms/{id}/acknowledge`, `POST /api/alarms/{id}/close`. */
export function makeAlarmHandlers(alarms: AlarmStore) {
  const transition =
    (to: 'acknowledged' | 'closed') =>
    async (request: ApiRequest): Promise<ApiResponse> => ({
      status: 200,
      jsonBody: await alarms.transition(request.params.id ?? '', to),
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
