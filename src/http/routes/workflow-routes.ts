/**
 * The route table of the provisioning workflow and job operations (see device-routes.ts): what src/index.ts
 * registers and what the OpenAPI document says about each.
 */
import { z } from 'zod';
import {
  JOB_ID,
  devicesSchema as jobDeviceQuerySchema,
  listSchema as jobQuerySchema,
} from '../../jobs/http-handlers.js';
import { jobRequestSchema } from '../../jobs/job-spec.js';
import { MAX_BULK_REQUEST_DEVICES } from '../../provisioning/bulk-provisioning-workflow.js';
import {
  invalidModeSchema,
  resultsQuerySchema,
  specSchema,
} from '../../provisioning/workflow-http-handlers.js';
import {
  under,
  type ApiRoute,
  type HeaderSpec,
  type ParameterSpec,
  type ResponseSpec,
} from '../openapi-generator.js';
import {
  cancellingSchema,
  jobAcceptedSchema,
  jobDetailsSchema,
  jobDevicePageSchema,
  jobPageSchema,
  provisioningResultLineSchema,
  workflowAccepted,
  workflowStatusSchema,
} from '../schemas/workflow-schemas.js';

const instanceIdParameter: ParameterSpec = {
  name: 'instanceId',
  in: 'path',
  description: 'Provisioning workflow id, as returned by the starter (any other id is 404)',
  schema: z.string().regex(/^(provision|bulk)-[0-9a-f-]{36}$/),
};
const jobIdParameter: ParameterSpec = {
  name: 'id',
  in: 'path',
  description: 'Job id, as returned by POST /jobs (any other id is 404)',
  schema: z.string().regex(JOB_ID),
};
/** The headers of a 202 that started or cancels a workflow. */
const workflowStatusHeaders: Record<string, HeaderSpec> = {
  Location: {
    description: 'The status route of this API: /api/provisioning/{instanceId}',
    schema: z.string(),
  },
  'Retry-After': { description: 'Seconds to wait before polling', schema: z.number().int() },
};
const UNKNOWN_WORKFLOW = 'Unknown provisioning workflow';
const workflow = under('/provisioning/{instanceId}', 'Workflows', instanceIdParameter);
const job = under('/jobs/{id}', 'Jobs', jobIdParameter);
/** Both job cancel routes (POST /jobs/{id}/cancel and its alias DELETE /jobs/{id}) answer alike. */
const jobCancelAnswers = {
  responses: {
    202: {
      description: 'Cancelling',
      schema: cancellingSchema('GET: where the job stands (also the Location header)'),
      headers: { Location: { description: '/api/jobs/{id}', schema: z.string() } },
    } satisfies ResponseSpec,
  },
  problems: [400, 500, 503],
  problemNotes: { 404: 'Unknown job', 409: 'The job already ended; there is nothing to cancel' },
};

export const WORKFLOW_ROUTES: readonly ApiRoute[] = [
  {
    operationId: 'startProvisioning',
    method: 'post',
    path: '/provisioning/devices',
    tags: ['Workflows'],
    summary: 'Start the provisioning workflow of one device (identity, catalog entry, twin, hooks, activate)',
    description:
      'Refuses at once a device id that already exists. The keys are never in the status: they are in GET /provisioning/{instanceId}/results once the workflow completed.',
    body: { content: { 'application/json': specSchema } },
    responses: {
      202: {
        description: 'Started; poll statusUri',
        schema: workflowAccepted({ deviceId: true, cancelUri: true }),
        headers: workflowStatusHeaders,
      },
    },
    problems: [400, 413, 415, 422, 500, 503],
    problemNotes: { 409: 'A device with this id already exists' },
  },
  {
    operationId: 'startBulkProvisioning',
    method: 'post',
    path: '/provisioning/bulk',
    tags: ['Workflows'],
    summary: 'Start a bulk provisioning workflow: 1-10,000 devices, created in chunks of 100',
    description:
      "A JSON array of devices, or NDJSON with one device object per line (told apart by the body's first character). Every device is checked first: by default one invalid device starts nothing (422, and the problem's errors list every bad entry, up to 10 problems each); with invalid=skip the valid devices are provisioned and each invalid entry becomes an `invalid` result line (422 only when no device is valid).",
    query: z.object({ invalid: invalidModeSchema }),
    body: {
      required: true,
      content: {
        'application/json': z.array(specSchema).min(1).max(MAX_BULK_REQUEST_DEVICES),
        'application/x-ndjson': z
          .string()
          .describe('One ProvisioningRequest object per line; 1-10,000 lines'),
      },
    },
    responses: {
      202: {
        description: 'Started; poll statusUri',
        schema: workflowAccepted({ total: true, chunks: true, cancelUri: true }),
        headers: workflowStatusHeaders,
      },
    },
    problems: [400, 413, 415, 422, 500],
  },
  {
    ...workflow('getProvisioning', 'get'),
    summary: 'Where a provisioning workflow stands (step or counts, outcome); never keys',
    responses: { 200: { description: 'The workflow status', schema: workflowStatusSchema } },
    problems: [400, 500],
    problemNotes: { 404: UNKNOWN_WORKFLOW },
  },
  {
    ...workflow('cancelProvisioning', 'post', '/cancel'),
    summary: 'Cancel a running provisioning workflow (the cancelUri of its 202 answer)',
    description:
      'One device: the workflow stops before its next step (a step already running finishes first) and compensates like a failure: hooks told device.provisioning-cancelled, its catalog entry and identity removed; the same id can be provisioned again. Once the device is active the cancel changes nothing. Bulk: no further chunk starts; chunks already running finish (each device created and reported with its keys, or its identity removed); devices never reached are reported cancelled. Poll statusUri for the outcome.',
    responses: {
      202: {
        description: 'Cancel requested; poll statusUri',
        schema: cancellingSchema(),
        headers: workflowStatusHeaders,
      },
    },
    problems: [400, 500, 503],
    problemNotes: { 404: UNKNOWN_WORKFLOW, 409: 'The workflow has already finished' },
  },
  {
    ...workflow('getProvisioningResults', 'get', '/results'),
    summary: 'Per-device outcomes of a provisioning workflow, keys included for a bounded time',
    description:
      'Contains the device keys and connection strings of the devices created, the same secrets POST /devices returns; guarded by the function key like every operation here. Keys are served until keysExpireAt (Provisioning__KeysRetentionHours after the run published them, default 24 h); then the line keeps its outcome and says keys: "expired". With consume=true the keys handed out are removed from the results before the answer is sent (later reads say keys: "consumed"). 404 until the workflow has published its results.',
    query: resultsQuerySchema,
    responses: {
      200: {
        description: 'One line per device',
        schema: z.array(provisioningResultLineSchema),
        headers: { 'Cache-Control': { schema: z.literal('no-store') } },
      },
    },
    problems: [400, 500],
    problemNotes: {
      404: 'Unknown provisioning workflow, or no results yet',
      422: 'consume is neither true nor false, or an unknown query parameter',
    },
  },
  {
    operationId: 'createJob',
    method: 'post',
    path: '/jobs',
    tags: ['Jobs'],
    summary: 'Schedule a twin-update or direct-method job over many devices (once or repeating)',
    body: { required: true, content: { 'application/json': jobRequestSchema } },
    responses: {
      202: {
        description: 'Stored and scheduled',
        schema: jobAcceptedSchema,
        headers: {
          Location: { description: 'The status route of this API: /api/jobs/{id}', schema: z.string() },
        },
      },
    },
    problems: [400, 413, 415, 422, 500, 503],
  },
  {
    operationId: 'listJobs',
    method: 'get',
    path: '/jobs',
    tags: ['Jobs'],
    summary: 'List jobs, newest first',
    query: jobQuerySchema,
    responses: { 200: { description: 'A page of jobs', schema: jobPageSchema } },
    problems: [400, 422, 500, 503],
  },
  {
    ...job('getJob', 'get'),
    summary: "The job with its recent runs, and its orchestration's live progress",
    responses: { 200: { description: 'The job', schema: jobDetailsSchema } },
    problems: [400, 500, 503],
    problemNotes: { 404: 'Unknown job' },
  },
  {
    ...job('cancelJob', 'delete'),
    summary: 'Cancel the job (alias of POST /jobs/{id}/cancel, kept for earlier clients)',
    ...jobCancelAnswers,
  },
  {
    ...job('cancelJobPost', 'post', '/cancel'),
    summary: 'Cancel the job: its orchestration and the running IoT Hub job (it happens next)',
    description: 'The cancelUri of the 202 answer to POST /jobs. A repeating job schedules no further run.',
    ...jobCancelAnswers,
  },
  {
    ...job('listJobDevices', 'get', '/devices'),
    summary:
      "One run's per-device outcomes (the latest run by default), paged, as IoT Hub's device job results",
    description:
      "Kept per run up to Jobs__MaxDeviceResults devices (in the order IoT Hub lists them); the run's deviceResults counts what was kept and what was dropped beyond that.",
    query: jobDeviceQuerySchema,
    responses: { 200: { description: 'A page of per-device outcomes', schema: jobDevicePageSchema } },
    problems: [400, 422, 500, 503],
    problemNotes: { 404: 'Unknown job' },
  },
];
