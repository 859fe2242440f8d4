import { z } from 'zod';
import type { ApiRequest, ApiResponse } from '../provisioning/http-handlers.js';
import { UnprocessableRequestError } from '../shared/errors.js';
import type { AlarmStore } from './alarms.js';

const listSchema = z.strictObject({
  deviceId: z.string().min(1).max(128).optional(),
  status: z.enum(['open', 'acknowledged', 'closed']).optional(),
  top: z.coerce.number().int().min(1).max(1000).default(100),
  continuationToken: z.string().min(1).optional(),
});

/** `GET /api/alarms`, `POST /api/alarms/{id}/acknowledge`, `POST /api/alarms/{id}/close`. */
export function makeAlarmHandlers(alarms: AlarmStore) {
  const transition =
    (to: 'acknowledged' | 'closed') =>
    async (request: ApiRequest): Promise<ApiResponse> => ({
      status: 200,
      jsonBody: await alarms.transition(request.params.id ?? '', to),
    });
  return {
    listAlarms: async (request: ApiRequest): Promise<ApiResponse> => {
      const query = Object.fromEntries([...request.query].filter(([key]) => key !== 'code'));
      const parsed = listSchema.safeParse(query);
      if (!parsed.success) {
        throw new UnprocessableRequestError(
          'Invalid query.',
          parsed.error.issues.flatMap((issue) =>
            issue.code === 'unrecognized_keys'
              ? issue.keys.map((key) => ({ path: key, message: 'is not a known parameter' }))
              : [{ path: issue.path.map(String).join('.'), message: issue.message }],
          ),
        );
      }
      const { top, deviceId, status, continuationToken } = parsed.data;
      const page = await alarms.list({
        top,
        ...(deviceId ? { deviceId } : {}),
        ...(status ? { status } : {}),
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
