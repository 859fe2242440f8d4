/**
 * Response schemas of the provisioning workflow and job routes (see device-schemas.ts for why they are zod).
 * Request schemas stay beside their handlers (job-spec.ts, workflow-http-handlers.ts).
 */
import { z } from 'zod';
import { jobRequestSchema } from '../../jobs/job-spec.js';
import { DEVICE_ID_PATTERN } from '../../shared/device-id.js';
import { dateTime, keysSchema } from './device-schemas.js';

const deviceId = () =>
  z
    .string()
    .regex(DEVICE_ID_PATTERN)
    .describe("IoT Hub device id: 1-128 characters of letters, digits and - . + % _ # * ? ! ( ) , : = @ $ '");
const runtimeStatus = () =>
  z
    .enum([
      'Pending',
      'Running',
      'Completed',
      'Failed',
      'Terminated',
      'ContinuedAsNew',
      'Suspended',
      'Unknown',
    ])
    .describe('Durable Functions runtime status');
const count = () => z.number().int().min(0);

const WORKFLOW_ACCEPTED =
  "The started workflow and this API's routes for it (never Durable's management URLs: they carry the extension's system key)";
const workflowAcceptedSchema = z
  .strictObject({
    id: z.string().describe('Workflow instance id'),
    statusUri: z.string().describe('GET: where the workflow stands (also the Location header)'),
    resultsUri: z.string().describe('GET: the outcome lines (keys included) once completed'),
    cancelUri: z
      .string()
      .optional()
      .describe('POST: cancels the workflow (provisioning: compensated like a failure)'),
    deviceId: z.string().optional().describe('POST /provisioning/devices: the device being provisioned'),
    total: z.number().int().min(1).optional().describe('POST /provisioning/bulk: devices requested'),
    chunks: z.number().int().min(1).optional().describe('POST /provisioning/bulk: chunks of at most 100'),
    invalid: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe('POST /provisioning/bulk?invalid=skip: entries skipped as invalid (reported in the results)'),
  })
  .meta({ id: 'WorkflowAccepted', description: WORKFLOW_ACCEPTED });

/** The 202 answer of a workflow starter, with the fields that starter always sets. */
export const workflowAccepted = (required: { [K in keyof typeof workflowAcceptedSchema.shape]?: true }) =>
  workflowAcceptedSchema.required(required).describe(WORKFLOW_ACCEPTED);

/** The answer to a cancel request (provisioning workflows and jobs). */
export const cancellingSchema = (statusUriDescription?: string) =>
  z.strictObject({
    id: z.string(),
    status: z.literal('cancelling'),
    statusUri: statusUriDescription === undefined ? z.string() : z.string().describe(statusUriDescription),
  });

export const workflowStatusSchema = z
  .strictObject({
    instanceId: z.string(),
    name: z.enum(['provisionDevice', 'bulkProvision']),
    runtimeStatus: runtimeStatus(),
    output: z
      .unknown()
      .optional()
      .describe(
        'When completed: provisionDevice { deviceId, outcome, results }, or after a cancel { deviceId, outcome: cancelled, cancelledAtStep, compensated, problems }; bulkProvision { total, created, alreadyExists, invalid, failed, results }, after a cancel also status: cancelled and cancelled (devices never reached) (results: the blob of the outcome lines)',
      ),
    customStatus: z
      .unknown()
      .optional()
      .describe(
        'Progress: provisionDevice { deviceId, step, failedStep?, reason?, compensated?, problems? }; bulkProvision { chunksDone, chunks, created, alreadyExists, invalid, failed, step? }',
      ),
    createdTime: dateTime(),
    lastUpdatedTime: dateTime(),
  })
  .meta({ id: 'WorkflowStatus' });

export const provisioningResultLineSchema = z
  .strictObject({
    deviceId: z.string().optional(),
    index: z.number().int().min(0).optional().describe('Position of a skipped invalid entry in the request'),
    outcome: z.enum(['provisioned', 'created', 'already-exists', 'invalid', 'failed', 'cancelled']),
    keys: z.xor([keysSchema, z.enum(['expired', 'consumed', 'unreadable'])]).optional(),
    connectionString: z.string().optional(),
    keysExpireAt: dateTime().optional(),
    error: z.string().optional(),
    failedStep: z
      .enum(['create-identity', 'write-registry', 'set-initial-twin', 'call-hooks', 'activate'])
      .optional(),
    reason: z.string().optional(),
  })
  .meta({
    id: 'ProvisioningResultLine',
    description:
      'provisioned (one device) or created (bulk): keys and connectionString until keysExpireAt, then keys: "expired" (or "consumed" after a consume=true download, "unreadable" if the encryption key changed); already-exists, invalid, failed, cancelled (bulk): error; failed or cancelled (one device): failedStep and reason; an entry skipped by invalid=skip: index, and deviceId when it had one',
  });

const deviceJobStatisticsSchema = z
  .strictObject({
    deviceCount: count(),
    succeededCount: count(),
    failedCount: count(),
    runningCount: count(),
    pendingCount: count(),
  })
  .meta({ id: 'DeviceJobStatistics' });
const deviceResultCountsSchema = z.strictObject({ kept: count(), dropped: count() }).meta({
  id: 'DeviceResultCounts',
  description:
    'Per-device outcomes kept for GET /jobs/{id}/devices, and those dropped beyond Jobs__MaxDeviceResults',
});
const jobStatus = () => z.enum(['scheduled', 'waiting', 'running', 'completed', 'failed', 'cancelled']);
const jobRunSchema = z
  .strictObject({
    run: z.number().int().min(1),
    startedAt: dateTime(),
    endedAt: dateTime().optional(),
    status: jobStatus(),
    hubJobIds: z.array(z.string()),
    statistics: deviceJobStatisticsSchema,
    failureReason: z.string().optional(),
    deviceResults: deviceResultCountsSchema.optional(),
  })
  .meta({
    id: 'JobRun',
    description: 'One run: a repeating job has one per occurrence, each with one IoT Hub job per batch',
  });

const jobRecordShape = {
  id: z.string().regex(/^job-[0-9a-f-]{36}$/),
  request: jobRequestSchema.describe('The validated request, defaults filled in'),
  status: jobStatus(),
  createdAt: dateTime(),
  updatedAt: dateTime(),
  nextRunAt: dateTime().optional(),
  runs: z.array(jobRunSchema).max(20).describe('Most recent runs, newest last'),
  cancelRequestedAt: dateTime()
    .optional()
    .describe('When a cancel was asked for; each run checks it at its start'),
};
export const jobRecordSchema = z.strictObject(jobRecordShape).meta({ id: 'JobRecord' });
export const jobAcceptedSchema = z
  .strictObject({
    ...jobRecordShape,
    statusUri: z.string().describe('GET: the job and its runs (also the Location header)'),
    cancelUri: z.string().describe('POST: cancel the job'),
  })
  .meta({
    id: 'JobAccepted',
    description:
      "The stored job and this API's routes for it (never Durable's management URLs: they carry the extension's system key)",
  });
export const jobDetailsSchema = z
  .strictObject({
    ...jobRecordShape,
    workflow: z
      .strictObject({
        runtimeStatus: runtimeStatus(),
        progress: z
          .unknown()
          .optional()
          .describe('Custom status: { run, step, batch?, batches?, startAt?, lastRun? }'),
      })
      .optional()
      .describe("The job's orchestration, when it still exists"),
  })
  .meta({ id: 'JobDetails' });

/** GET /jobs: a page of jobs, newest first. */
export const jobPageSchema = z.strictObject({
  items: z.array(jobRecordSchema),
  continuationToken: z.string().optional().describe('Absent on the last page'),
});

export const deviceJobResultSchema = z
  .strictObject({
    deviceId: deviceId(),
    status: z
      .enum(['succeeded', 'failed'])
      .describe('failed also when the device answered its method outside 2xx, or the job never reached it'),
    error: z
      .strictObject({ code: z.string(), message: z.string().max(512) })
      .optional()
      .describe('Why it failed: DeviceNotOnline, NotRun, or the code IoT Hub gave'),
    methodResponse: z
      .strictObject({
        status: z.number().int(),
        payloadExcerpt: z.string().max(512).optional().describe('The payload as JSON text, cut'),
        payloadTruncated: z.literal(true).optional(),
      })
      .optional()
      .describe("deviceMethod jobs: the device's answer"),
    endedAt: z.string().optional(),
  })
  .meta({ id: 'DeviceJobResult', description: "One device's part of a job run (IoT Hub's device job)" });

/** GET /jobs/{id}/devices: a page of one run's per-device outcomes. */
export const jobDevicePageSchema = z.strictObject({
  run: z.number().int().min(1).optional().describe('The run shown; absent before the first run'),
  deviceResults: deviceResultCountsSchema.optional(),
  items: z.array(deviceJobResultSchema),
  continuationToken: z.string().optional().describe('Absent on the last page'),
});
