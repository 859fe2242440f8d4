import { z } from 'zod';
import { DEVICE_ID_PATTERN } from '../shared/device-id.js';
import { QUERYABLE_FIELD } from '../provisioning/catalog.js';
import { validateDesiredPatch } from '../provisioning/twin.js';
import { UnprocessableRequestError } from '../shared/errors.js';
import { TAG_PATH } from './query-condition.js';
import { MIN_REPEAT_MS, parseRepeat } from './schedule.js';

/** Most devices one job may list explicitly. */
export const MAX_JOB_DEVICE_IDS = 10_000;

const scalar = z.union([z.string().max(512), z.number(), z.boolean()]);

const targetSchema = z.union([
  z.strictObject({
    deviceIds: z
      .array(
        z
          .string()
          .regex(DEVICE_ID_PATTERN, 'is not a valid device id')
          .describe(
            "IoT Hub device id: 1-128 characters of letters, digits and - . + % _ # * ? ! ( ) , : = @ $ '",
          ),
      )
      .min(1)
      .max(MAX_JOB_DEVICE_IDS),
  }),
  z.strictObject({
    where: z
      .strictObject({
        status: z.enum(['enabled', 'disabled']).optional(),
        metadata: z
          .record(z.string().regex(QUERYABLE_FIELD, 'must be an identifier'), scalar)
          .optional()
          .describe('Device catalog metadata fields that must equal the given values'),
        tags: z
          .record(z.string().regex(TAG_PATH, 'must be a dotted identifier'), scalar)
          .optional()
          .describe('Twin tags (dotted paths allowed: site.building) that must equal the given values'),
      })
      .refine((w) => w.status !== undefined || w.metadata !== undefined || w.tags !== undefined, {
        message: 'must name at least one of status, metadata, tags',
      })
      .meta({ minProperties: 1 })
      .describe('Devices matching all of these'),
  }),
]);

/**
 * A job request as POST /jobs reads it. The document (`JobRequest`) also states checkJobRequest's type rule,
 * which the schema itself cannot express.
 */
export const jobRequestSchema = z
  .strictObject({
    type: z.enum(['twinUpdate', 'deviceMethod']),
    target: targetSchema,
    twinPatch: z
      .record(z.string(), z.unknown())
      .optional()
      .describe('Desired properties to merge (null removes); checked against IoT Hub twin limits'),
    method: z
      .strictObject({
        name: z.string().min(1).max(100),
        payload: z.unknown().optional(),
        /** IoT Hub accepts 5–300 s. */
        responseTimeoutInSeconds: z.number().int().min(5).max(300).default(30),
      })
      .optional(),
    startAt: z.iso.datetime({ offset: true }).optional().describe('First run; now when absent'),
    repeat: z
      .string()
      .max(100)
      .optional()
      .describe("ISO 8601 duration ('PT30M', at least one minute) or 5-field cron ('0 3 * * *'), in UTC"),
    /** IoT Hub's bound on one job run, seconds (default 1 h, at most 2 days). */
    maxExecutionTimeInSeconds: z.number().int().min(60).max(172_800).default(3600),
    /** Post a Slack notice (or a log line without Slack) when a run ends. */
    notify: z
      .boolean()
      .default(false)
      .describe('Post a Slack notice (or a log line without Slack) when a run ends'),
  })
  .meta({
    id: 'JobRequest',
    description:
      'twinUpdate jobs need twinPatch (and no method); deviceMethod jobs need method (and no twinPatch)',
    allOf: [
      {
        if: { properties: { type: { const: 'twinUpdate' } } },
        then: { required: ['twinPatch'], not: { required: ['method'] } },
        else: { required: ['method'], not: { required: ['twinPatch'] } },
      },
    ],
  });

export type JobRequest = z.infer<typeof jobRequestSchema>;
export type JobTargetSpec = JobRequest['target'];

/** Rules across fields, each reported with its path (422). */
export function checkJobRequest(request: JobRequest): JobRequest {
  const problems: { path: string; message: string }[] = [];
  if (request.type === 'twinUpdate') {
    if (!request.twinPatch) problems.push({ path: 'twinPatch', message: 'required for a twinUpdate job' });
    if (request.method) problems.push({ path: 'method', message: 'only for a deviceMethod job' });
  } else {
    if (!request.method) problems.push({ path: 'method', message: 'required for a deviceMethod job' });
    if (request.twinPatch) problems.push({ path: 'twinPatch', message: 'only for a twinUpdate job' });
  }
  if (request.repeat !== undefined) {
    const repeat = parseRepeat(request.repeat);
    if (!repeat) {
      problems.push({
        path: 'repeat',
        message: "must be an ISO 8601 duration ('PT30M') or a 5-field cron ('0 3 * * *')",
      });
    } else if (repeat.kind === 'interval' && repeat.milliseconds < MIN_REPEAT_MS) {
      problems.push({ path: 'repeat', message: 'must be at least one minute' });
    }
  }
  if (problems.length > 0) throw new UnprocessableRequestError('The job request is inconsistent.', problems);
  if (request.twinPatch) validateDesiredPatch(request.twinPatch);
  return request;
}
