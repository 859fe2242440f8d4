/**
 * The OpenAPI 3.1 description of the whole HTTP API, served at `GET /api/openapi.json`. Tests check that it is
 * a valid OpenAPI document, that it lists every registered HTTP function, and that real responses match it.
 */
import { QUERYABLE_FIELD } from '../provisioning/registry.js';
import { TAG_PATH } from '../jobs/query-condition.js';
import { DEVICE_ID_PATTERN } from '../shared/device-id.js';

const json = (schema: object) => ({ 'application/json': { schema } });
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const problem = (description: string) => ({
  description,
  content: { 'application/problem+json': { schema: ref('Problem') } },
});
const ok = (description: string, schema: object, headers?: object) => ({
  description,
  content: json(schema),
  ...(headers ? { headers } : {}),
});
const etagHeader = {
  ETag: { description: 'Version of the registry entry, for If-Match', schema: { type: 'string' } },
};
const idParam = {
  name: 'id',
  in: 'path',
  required: true,
  description: "IoT Hub device id: 1-128 characters of letters, digits and - . + % _ # * ? ! ( ) , : = @ $ '",
  schema: { type: 'string', minLength: 1, maxLength: 128 },
};
const errors = (...codes: number[]) =>
  Object.fromEntries(
    codes.map((code) => [
      String(code),
      problem(
        {
          400: 'Malformed JSON, JSON nested deeper than 32 levels, an invalid id or continuation token',
          404: 'Unknown device',
          409: 'Duplicate device id, or a state change the resource does not allow',
          412: 'ETag mismatch',
          413: 'The body is larger than the route accepts (Http__MaxBodyBytes; bulk: Http__MaxBulkBodyBytes)',
          415: 'The declared Content-Type is not JSON (absent, text/plain and x-www-form-urlencoded are read as JSON)',
          422: 'The body or query breaks the schema',
          429: 'Too many active jobs on IoT Hub',
          503: 'A backing service is throttled or unavailable; retry after Retry-After seconds',
          500: 'Internal error (no internals disclosed)',
        }[code] ?? 'Error',
      ),
    ]),
  );

const metadata = {
  type: 'object',
  additionalProperties: true,
  description: 'Descriptive metadata, never secrets',
};
const keys = {
  type: 'object',
  additionalProperties: false,
  required: ['primaryKey', 'secondaryKey'],
  properties: {
    primaryKey: { type: 'string', description: 'base64 of 16-64 bytes' },
    secondaryKey: { type: 'string', description: 'base64 of 16-64 bytes' },
  },
};

const deviceId = {
  type: 'string',
  pattern: DEVICE_ID_PATTERN.source,
  description: "IoT Hub device id: 1-128 characters of letters, digits and - . + % _ # * ? ! ( ) , : = @ $ '",
};
const runtimeStatus = {
  enum: ['Pending', 'Running', 'Completed', 'Failed', 'Terminated', 'ContinuedAsNew', 'Suspended', 'Unknown'],
  description: 'Durable Functions runtime status',
};
const scalar = { type: ['string', 'number', 'boolean'], maxLength: 512 };
const instanceIdParam = {
  name: 'instanceId',
  in: 'path',
  required: true,
  description: 'Provisioning workflow id, as returned by the starter (any other id is 404)',
  schema: { type: 'string', pattern: '^(provision|bulk)-[0-9a-f-]{36}$' },
};
/** The answers of both job cancel routes (POST /jobs/{id}/cancel and its alias DELETE /jobs/{id}). */
const jobCancelResponses = {
  '202': ok(
    'Cancelling',
    {
      type: 'object',
      additionalProperties: false,
      required: ['id', 'status', 'statusUri'],
      properties: {
        id: { type: 'string' },
        status: { const: 'cancelling' },
        statusUri: { type: 'string', description: 'GET: where the job stands (also the Location header)' },
      },
    },
    { Location: { description: '/api/jobs/{id}', schema: { type: 'string' } } },
  ),
  ...errors(400, 500, 503),
  '404': problem('Unknown job'),
  '409': problem('The job already ended; there is nothing to cancel'),
};

const jobIdParam = {
  name: 'id',
  in: 'path',
  required: true,
  description: 'Job id, as returned by POST /jobs (any other id is 404)',
  schema: { type: 'string', pattern: '^job-[0-9a-f-]{36}$' },
};
const accepted = (description: string, schema: object) =>
  ok(description, schema, {
    Location: {
      description: 'The status route of this API: /api/provisioning/{instanceId}',
      schema: { type: 'string' },
    },
    'Retry-After': { description: 'Seconds to wait before polling', schema: { type: 'integer' } },
  });
const jobRecord = {
  required: ['id', 'request', 'status', 'createdAt', 'updatedAt', 'runs'],
  properties: {
    id: { type: 'string', pattern: '^job-[0-9a-f-]{36}$' },
    request: { ...ref('JobRequest'), description: 'The validated request, defaults filled in' },
    status: { enum: ['scheduled', 'waiting', 'running', 'completed', 'failed', 'cancelled'] },
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
    nextRunAt: { type: 'string', format: 'date-time' },
    runs: { type: 'array', maxItems: 20, description: 'Most recent runs, newest last', items: ref('JobRun') },
  },
};

export const openApiDocument = {
  openapi: '3.1.0',
  info: {
    title: 'IoT Functions backend',
    version: '0.1.0',
    description:
      'Provisioning API (seed 002 §3.4), last-known device state, alarms, provisioning workflows and scheduled device jobs.',
  },
  servers: [{ url: '/api' }],
  security: [{ functionKey: [] }],
  tags: [
    { name: 'Devices', description: 'Device identities, registry entries, twins and last-known state' },
    { name: 'Alarms', description: 'Alarms raised from anomalies' },
    { name: 'Workflows', description: 'Durable provisioning workflows: one device, or up to 10,000 in bulk' },
    {
      name: 'Jobs',
      description: 'Scheduled twin-update and direct-method jobs over many devices (IoT Hub jobs)',
    },
    { name: 'Meta', description: 'This document and the health of the dependencies' },
  ],
  paths: {
    '/devices': {
      post: {
        operationId: 'registerDevice',
        tags: ['Devices'],
        summary: 'Register a device: identity (with keys) and registry entry',
        description:
          '409 when a registry entry uses the id. An identity without a registry entry (e.g. after data was lost) is adopted: the entry is written and the keys re-issued (or set to the given ones).',
        requestBody: {
          required: true,
          content: json({
            type: 'object',
            additionalProperties: false,
            properties: { id: { type: 'string' }, keys, metadata },
          }),
        },
        responses: {
          '201': ok(
            'Registered; the only response besides reset-credentials that carries keys',
            ref('RegisteredDevice'),
            {
              ...etagHeader,
              Location: { schema: { type: 'string' } },
            },
          ),
          ...errors(400, 409, 413, 415, 422, 500, 503),
        },
      },
      get: {
        operationId: 'listDevices',
        tags: ['Devices'],
        summary: 'List or query devices (validated parameters only)',
        parameters: [
          { name: 'status', in: 'query', schema: { enum: ['enabled', 'disabled'] } },
          { name: 'top', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
          { name: 'continuationToken', in: 'query', schema: { type: 'string' } },
          {
            name: 'metadata',
            in: 'query',
            style: 'deepObject',
            description:
              'metadata.<field>=<value>; field names are identifiers other than __proto__, constructor and prototype (422), each at most once; true/false and numbers match typed values',
            schema: { type: 'object', additionalProperties: { type: 'string' } },
          },
        ],
        responses: {
          '200': ok('A page of devices', {
            type: 'object',
            required: ['items', 'continuationToken'],
            additionalProperties: false,
            properties: {
              items: { type: 'array', items: ref('Device') },
              continuationToken: { type: ['string', 'null'] },
            },
          }),
          ...errors(400, 422, 500, 503),
        },
      },
    },
    '/devices/{id}': {
      parameters: [idParam],
      get: {
        operationId: 'getDevice',
        tags: ['Devices'],
        responses: {
          '200': ok('The device (never keys)', ref('Device'), etagHeader),
          ...errors(400, 404, 500),
        },
      },
      patch: {
        operationId: 'updateDevice',
        tags: ['Devices'],
        summary: 'JSON merge patch (RFC 7396) of the metadata',
        parameters: [{ name: 'If-Match', in: 'header', schema: { type: 'string' } }],
        requestBody: {
          required: true,
          content: { 'application/merge-patch+json': { schema: metadata }, ...json(metadata) },
        },
        responses: {
          '200': ok('Updated', ref('Device'), etagHeader),
          ...errors(400, 404, 412, 413, 415, 422, 500),
        },
      },
      delete: {
        operationId: 'unregisterDevice',
        tags: ['Devices'],
        parameters: [{ name: 'purgeState', in: 'query', schema: { type: 'boolean', default: false } }],
        responses: { '204': { description: 'Unregistered' }, ...errors(400, 404, 422, 500) },
      },
    },
    '/devices/{id}/activate': {
      parameters: [idParam],
      post: {
        operationId: 'activateDevice',
        tags: ['Devices'],
        requestBody: { content: json(ref('StatusChange')) },
        responses: {
          '200': ok('Enabled', ref('Device'), etagHeader),
          ...errors(400, 404, 413, 415, 422, 500),
        },
      },
    },
    '/devices/{id}/deactivate': {
      parameters: [idParam],
      post: {
        operationId: 'deactivateDevice',
        tags: ['Devices'],
        summary: 'Disable the device; the identity store refuses it at once',
        requestBody: { content: json(ref('StatusChange')) },
        responses: {
          '200': ok('Disabled', ref('Device'), etagHeader),
          ...errors(400, 404, 413, 415, 422, 500),
        },
      },
    },
    '/devices/{id}/reset-credentials': {
      parameters: [idParam],
      post: {
        operationId: 'resetDeviceCredentials',
        tags: ['Devices'],
        requestBody: {
          content: json({ type: 'object', additionalProperties: false, properties: { keys } }),
        },
        description:
          'Concurrent resets of one device are serialized on the identity: the one that wins answers 200 with the keys the identity store holds; the others answer 409 (retry for a fresh pair).',
        responses: {
          '200': ok('New keys', ref('Credentials')),
          ...errors(400, 404, 409, 413, 415, 422, 500),
        },
      },
    },
    '/devices/{id}/twin': {
      parameters: [idParam],
      get: {
        operationId: 'getDeviceTwin',
        tags: ['Devices'],
        responses: {
          '200': ok('The twin (desired and reported properties)', ref('Twin'), etagHeader),
          ...errors(400, 404, 500, 503),
        },
      },
      patch: {
        operationId: 'updateDeviceTwin',
        tags: ['Devices'],
        summary: 'Merge desired properties (null removes); checked against IoT Hub twin limits first',
        parameters: [{ name: 'If-Match', in: 'header', schema: { type: 'string' } }],
        requestBody: {
          required: true,
          content: json({
            type: 'object',
            additionalProperties: false,
            required: ['desired'],
            properties: { desired: { type: 'object' } },
          }),
        },
        responses: {
          '200': ok('The updated twin', ref('Twin'), etagHeader),
          ...errors(400, 404, 412, 413, 415, 422, 500, 503),
        },
      },
    },
    '/devices/{id}/state': {
      parameters: [idParam],
      get: {
        operationId: 'getDeviceState',
        tags: ['Devices'],
        summary: 'Last-known values of the device',
        responses: { '200': ok('Last-known values', ref('DeviceState')), ...errors(400, 404, 500) },
      },
    },
    '/alarms': {
      get: {
        operationId: 'listAlarms',
        tags: ['Alarms'],
        parameters: [
          { name: 'deviceId', in: 'query', schema: { type: 'string' } },
          { name: 'status', in: 'query', schema: { enum: ['open', 'acknowledged', 'closed'] } },
          {
            name: 'notification',
            in: 'query',
            description:
              'Notification state; `pending` lists the alerts not yet delivered (the outbox redeliverAlerts works through)',
            schema: { enum: ['pending', 'notifying', 'sent', 'logged', 'undeliverable'] },
          },
          { name: 'top', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
          { name: 'continuationToken', in: 'query', schema: { type: 'string' } },
        ],
        responses: {
          '200': ok('A page of alarms', {
            type: 'object',
            required: ['items', 'continuationToken'],
            properties: {
              items: { type: 'array', items: ref('Alarm') },
              continuationToken: { type: ['string', 'null'] },
            },
          }),
          ...errors(400, 422, 500, 503),
        },
      },
    },
    '/alarms/{id}/acknowledge': {
      parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
      post: {
        operationId: 'acknowledgeAlarm',
        tags: ['Alarms'],
        responses: { '200': ok('Acknowledged', ref('Alarm')), ...errors(400, 404, 409, 500, 503) },
      },
    },
    '/alarms/{id}/close': {
      parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
      post: {
        operationId: 'closeAlarm',
        tags: ['Alarms'],
        responses: { '200': ok('Closed', ref('Alarm')), ...errors(400, 404, 409, 500, 503) },
      },
    },
    '/provisioning/devices': {
      post: {
        operationId: 'startProvisioning',
        tags: ['Workflows'],
        summary: 'Start the provisioning workflow of one device (identity, registry, twin, hooks, activate)',
        description:
          'Refuses at once a device id that already exists. The keys are never in the status: they are in GET /provisioning/{instanceId}/results once the workflow completed.',
        requestBody: { content: json(ref('ProvisioningRequest')) },
        responses: {
          '202': accepted('Started; poll statusUri', {
            allOf: [ref('WorkflowAccepted'), { required: ['deviceId', 'cancelUri'] }],
          }),
          ...errors(400, 413, 415, 422, 500, 503),
          '409': problem('A device with this id already exists'),
        },
      },
    },
    '/provisioning/bulk': {
      post: {
        operationId: 'startBulkProvisioning',
        tags: ['Workflows'],
        summary: 'Start a bulk provisioning workflow: 1-10,000 devices, created in chunks of 100',
        description:
          "A JSON array of devices, or NDJSON with one device object per line (told apart by the body's first character). Every device is checked first: by default one invalid device starts nothing (422, and the problem's errors list every bad entry, up to 10 problems each); with invalid=skip the valid devices are provisioned and each invalid entry becomes an `invalid` result line (422 only when no device is valid).",
        parameters: [
          {
            name: 'invalid',
            in: 'query',
            description: 'What to do with invalid entries: reject the whole request (default) or skip them',
            schema: { enum: ['reject', 'skip'], default: 'reject' },
          },
        ],
        requestBody: {
          required: true,
          content: {
            ...json({ type: 'array', minItems: 1, maxItems: 10000, items: ref('ProvisioningRequest') }),
            'application/x-ndjson': {
              schema: {
                type: 'string',
                description: 'One ProvisioningRequest object per line; 1-10,000 lines',
              },
            },
          },
        },
        responses: {
          '202': accepted('Started; poll statusUri', {
            allOf: [ref('WorkflowAccepted'), { required: ['total', 'chunks', 'cancelUri'] }],
          }),
          ...errors(400, 413, 415, 422, 500),
        },
      },
    },
    '/provisioning/{instanceId}': {
      parameters: [instanceIdParam],
      get: {
        operationId: 'getProvisioning',
        tags: ['Workflows'],
        summary: 'Where a provisioning workflow stands (step or counts, outcome); never keys',
        responses: {
          '200': ok('The workflow status', ref('WorkflowStatus')),
          ...errors(400, 500),
          '404': problem('Unknown provisioning workflow'),
        },
      },
    },
    '/provisioning/{instanceId}/cancel': {
      parameters: [instanceIdParam],
      post: {
        operationId: 'cancelProvisioning',
        tags: ['Workflows'],
        summary: 'Cancel a running provisioning workflow (the cancelUri of its 202 answer)',
        description:
          'One device: the workflow stops before its next step (a step already running finishes first) and compensates like a failure: hooks told device.provisioning-cancelled, its registry entry and identity removed; the same id can be provisioned again. Once the device is active the cancel changes nothing. Bulk: no further chunk starts; chunks already running finish (each device created and reported with its keys, or its identity removed); devices never reached are reported cancelled. Poll statusUri for the outcome.',
        responses: {
          '202': accepted('Cancel requested; poll statusUri', {
            type: 'object',
            additionalProperties: false,
            required: ['id', 'statusUri', 'status'],
            properties: {
              id: { type: 'string' },
              statusUri: { type: 'string' },
              status: { const: 'cancelling' },
            },
          }),
          ...errors(400, 500, 503),
          '404': problem('Unknown provisioning workflow'),
          '409': problem('The workflow has already finished'),
        },
      },
    },
    '/provisioning/{instanceId}/results': {
      parameters: [instanceIdParam],
      get: {
        operationId: 'getProvisioningResults',
        tags: ['Workflows'],
        summary: 'Per-device outcomes of a provisioning workflow, keys included for a bounded time',
        description:
          'Contains the device keys and connection strings of the devices created, the same secrets POST /devices returns; guarded by the function key like every operation here. Keys are served until keysExpireAt (Provisioning__KeysRetentionHours after the run published them, default 24 h); then the line keeps its outcome and says keys: "expired". With consume=true the keys handed out are removed from the results before the answer is sent (later reads say keys: "consumed"). 404 until the workflow has published its results.',
        parameters: [
          {
            name: 'consume',
            in: 'query',
            description: 'true: remove the keys from the stored results once this answer hands them out',
            schema: { enum: ['true', 'false'], default: 'false' },
          },
        ],
        responses: {
          '200': ok(
            'One line per device',
            { type: 'array', items: ref('ProvisioningResultLine') },
            { 'Cache-Control': { schema: { const: 'no-store' } } },
          ),
          ...errors(400, 500),
          '404': problem('Unknown provisioning workflow, or no results yet'),
          '422': problem('consume is neither true nor false, or an unknown query parameter'),
        },
      },
    },
    '/jobs': {
      post: {
        operationId: 'createJob',
        tags: ['Jobs'],
        summary: 'Schedule a twin-update or direct-method job over many devices (once or repeating)',
        requestBody: { required: true, content: json(ref('JobRequest')) },
        responses: {
          '202': ok('Stored and scheduled', ref('JobAccepted'), {
            Location: {
              description: 'The status route of this API: /api/jobs/{id}',
              schema: { type: 'string' },
            },
          }),
          ...errors(400, 413, 415, 422, 500, 503),
        },
      },
      get: {
        operationId: 'listJobs',
        tags: ['Jobs'],
        summary: 'List jobs, newest first',
        parameters: [
          { name: 'top', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100, default: 50 } },
          { name: 'continuationToken', in: 'query', schema: { type: 'string', minLength: 1 } },
        ],
        responses: {
          '200': ok('A page of jobs', {
            type: 'object',
            required: ['items'],
            additionalProperties: false,
            properties: {
              items: { type: 'array', items: ref('JobRecord') },
              continuationToken: { type: 'string', description: 'Absent on the last page' },
            },
          }),
          ...errors(400, 422, 500, 503),
        },
      },
    },
    '/jobs/{id}': {
      parameters: [jobIdParam],
      get: {
        operationId: 'getJob',
        tags: ['Jobs'],
        summary: "The job with its recent runs, and its orchestration's live progress",
        responses: {
          '200': ok('The job', ref('JobDetails')),
          ...errors(400, 500, 503),
          '404': problem('Unknown job'),
        },
      },
      delete: {
        operationId: 'cancelJob',
        tags: ['Jobs'],
        summary: 'Cancel the job (alias of POST /jobs/{id}/cancel, kept for earlier clients)',
        responses: {
          ...jobCancelResponses,
        },
      },
    },
    '/jobs/{id}/cancel': {
      parameters: [jobIdParam],
      post: {
        operationId: 'cancelJobPost',
        tags: ['Jobs'],
        summary: 'Cancel the job: its orchestration and the running IoT Hub job (it happens next)',
        description:
          'The cancelUri of the 202 answer to POST /jobs. A repeating job schedules no further run.',
        responses: {
          ...jobCancelResponses,
        },
      },
    },
    '/jobs/{id}/devices': {
      parameters: [jobIdParam],
      get: {
        operationId: 'listJobDevices',
        tags: ['Jobs'],
        summary:
          "One run's per-device outcomes (the latest run by default), paged, as IoT Hub's device job results",
        description:
          "Kept per run up to Jobs__MaxDeviceResults devices (in the order IoT Hub lists them); the run's deviceResults counts what was kept and what was dropped beyond that.",
        parameters: [
          { name: 'status', in: 'query', schema: { enum: ['succeeded', 'failed'] } },
          { name: 'run', in: 'query', schema: { type: 'integer', minimum: 1 } },
          { name: 'top', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
          { name: 'continuationToken', in: 'query', schema: { type: 'string', minLength: 1 } },
        ],
        responses: {
          '200': ok('A page of per-device outcomes', {
            type: 'object',
            required: ['items'],
            additionalProperties: false,
            properties: {
              run: { type: 'integer', minimum: 1, description: 'The run shown; absent before the first run' },
              deviceResults: ref('DeviceResultCounts'),
              items: { type: 'array', items: ref('DeviceJobResult') },
              continuationToken: { type: 'string', description: 'Absent on the last page' },
            },
          }),
          ...errors(400, 422, 500, 503),
          '404': problem('Unknown job'),
        },
      },
    },
    '/health': {
      get: {
        operationId: 'getHealth',
        tags: ['Meta'],
        summary: 'Whether Cosmos DB, Blob storage, the identity store and (when configured) Slack answer',
        description:
          'Anonymous and cheap: one probe round (2 s timeout each) is shared by all requests for 5 s. Names and latencies only, never endpoints or keys. The Slack probe opens a TLS connection to the webhook host and sends nothing.',
        security: [],
        responses: {
          '200': ok('Every dependency answers', ref('HealthReport'), {
            'Cache-Control': { schema: { const: 'no-store' } },
          }),
          '503': {
            description: 'At least one dependency does not answer',
            headers: { 'Retry-After': { schema: { type: 'integer' } } },
            content: json(ref('HealthReport')),
          },
        },
      },
    },
    '/openapi.json': {
      get: {
        operationId: 'openApiDocument',
        tags: ['Meta'],
        security: [],
        responses: { '200': ok('This document', { type: 'object' }) },
      },
    },
  },
  components: {
    securitySchemes: { functionKey: { type: 'apiKey', in: 'header', name: 'x-functions-key' } },
    schemas: {
      Device: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'status', 'metadata', 'createdAt', 'updatedAt'],
        properties: {
          id: { type: 'string' },
          status: { enum: ['enabled', 'disabled'] },
          metadata,
          createdAt: { type: 'string', format: 'date-time' },
          updatedAt: { type: 'string', format: 'date-time' },
        },
      },
      RegisteredDevice: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'status', 'metadata', 'createdAt', 'updatedAt', 'keys', 'connectionString'],
        properties: {
          id: { type: 'string' },
          status: { enum: ['enabled', 'disabled'] },
          metadata,
          createdAt: { type: 'string', format: 'date-time' },
          updatedAt: { type: 'string', format: 'date-time' },
          keys,
          connectionString: { type: 'string' },
        },
      },
      Credentials: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'keys', 'connectionString'],
        properties: { id: { type: 'string' }, keys, connectionString: { type: 'string' } },
      },
      Alarm: {
        type: 'object',
        required: [
          'id',
          'deviceId',
          'rule',
          'kind',
          'metric',
          'status',
          'count',
          'firstWindowEnd',
          'lastWindowEnd',
          'notification',
        ],
        properties: {
          id: { type: 'string' },
          deviceId: { type: 'string' },
          rule: { type: 'string' },
          kind: { enum: ['threshold', 'spike', 'dip', 'changepoint', 'unknown'] },
          metric: { type: 'string' },
          status: { enum: ['open', 'acknowledged', 'closed'] },
          count: { type: 'integer', minimum: 1 },
          firstWindowEnd: { type: 'string', format: 'date-time' },
          lastWindowEnd: { type: 'string', format: 'date-time' },
          lastValue: { type: 'number' },
          lastScore: { type: 'number' },
          threshold: { type: 'number' },
          notification: {
            enum: ['pending', 'notifying', 'sent', 'logged', 'undeliverable'],
            description:
              'pending: to be delivered (the outbox); notifying: claimed by a sender until notifyingUntil; sent/logged: delivered; undeliverable: refused for good or pending past the redelivery horizon',
          },
          lastNotifiedAt: { type: 'string', format: 'date-time' },
          pendingSince: { type: 'string', format: 'date-time' },
          deliveryAttempts: {
            type: 'integer',
            minimum: 0,
            description: 'Failed attempts of the pending notification',
          },
          nextAttemptAt: {
            type: 'string',
            format: 'date-time',
            description: 'Not retried before (back-off)',
          },
          lastDeliveryError: { type: 'string', description: "The channel's last answer (no secrets)" },
          notifyingUntil: { type: 'string', format: 'date-time' },
          notifyingLease: { type: 'string' },
        },
      },
      Twin: {
        type: 'object',
        additionalProperties: false,
        required: ['deviceId', 'desired', 'reported'],
        properties: {
          deviceId: { type: 'string' },
          desired: { type: 'object' },
          reported: { type: 'object' },
        },
      },
      StatusChange: { type: 'object', additionalProperties: false, properties: { metadata } },
      FieldValue: {
        type: 'object',
        required: ['value', 'timestamp', 'timeSource', 'sequenceNumber', 'recordIndex'],
        properties: {
          value: {},
          timestamp: { type: 'string', format: 'date-time' },
          timeSource: { enum: ['device', 'enqueued'] },
          sequenceNumber: { type: 'integer' },
          recordIndex: { type: 'integer' },
          version: { type: 'string' },
        },
      },
      DeviceState: {
        type: 'object',
        required: [
          'deviceId',
          'sequenceNumbers',
          'firstSeen',
          'lastSeen',
          'counts',
          'telemetry',
          'diagnostics',
          'metadata',
        ],
        properties: {
          deviceId: { type: 'string' },
          sequenceNumbers: { type: 'object', additionalProperties: { type: 'integer' } },
          firstSeen: { type: 'string', format: 'date-time' },
          lastSeen: { type: 'string', format: 'date-time' },
          counts: {
            type: 'object',
            required: ['messages', 'records'],
            properties: {
              messages: { type: 'integer' },
              records: { type: 'object', additionalProperties: { type: 'integer' } },
            },
          },
          telemetry: { type: 'object', additionalProperties: { $ref: '#/components/schemas/FieldValue' } },
          diagnostics: { type: 'object', additionalProperties: { $ref: '#/components/schemas/FieldValue' } },
          metadata: { type: 'object', additionalProperties: { $ref: '#/components/schemas/FieldValue' } },
        },
      },
      ProvisioningRequest: {
        type: 'object',
        additionalProperties: false,
        properties: {
          id: { ...deviceId, description: 'Device id; a UUID is generated when absent' },
          metadata,
        },
      },
      WorkflowAccepted: {
        type: 'object',
        additionalProperties: false,
        description:
          "The started workflow and this API's routes for it (never Durable's management URLs: they carry the extension's system key)",
        required: ['id', 'statusUri', 'resultsUri'],
        properties: {
          id: { type: 'string', description: 'Workflow instance id' },
          statusUri: {
            type: 'string',
            description: 'GET: where the workflow stands (also the Location header)',
          },
          resultsUri: {
            type: 'string',
            description: 'GET: the outcome lines (keys included) once completed',
          },
          cancelUri: {
            type: 'string',
            description: 'POST: cancels the workflow (provisioning: compensated like a failure)',
          },
          deviceId: {
            type: 'string',
            description: 'POST /provisioning/devices: the device being provisioned',
          },
          total: { type: 'integer', minimum: 1, description: 'POST /provisioning/bulk: devices requested' },
          chunks: {
            type: 'integer',
            minimum: 1,
            description: 'POST /provisioning/bulk: chunks of at most 100',
          },
          invalid: {
            type: 'integer',
            minimum: 1,
            description:
              'POST /provisioning/bulk?invalid=skip: entries skipped as invalid (reported in the results)',
          },
        },
      },
      WorkflowStatus: {
        type: 'object',
        additionalProperties: false,
        required: ['instanceId', 'name', 'runtimeStatus', 'createdTime', 'lastUpdatedTime'],
        properties: {
          instanceId: { type: 'string' },
          name: { enum: ['provisionDevice', 'bulkProvision'] },
          runtimeStatus,
          output: {
            description:
              'When completed: provisionDevice { deviceId, outcome, results }, or after a cancel { deviceId, outcome: cancelled, cancelledAtStep, compensated, problems }; bulkProvision { total, created, alreadyExists, invalid, failed, results }, after a cancel also status: cancelled and cancelled (devices never reached) (results: the blob of the outcome lines)',
          },
          customStatus: {
            description:
              'Progress: provisionDevice { deviceId, step, failedStep?, reason?, compensated?, problems? }; bulkProvision { chunksDone, chunks, created, alreadyExists, invalid, failed, step? }',
          },
          createdTime: { type: 'string', format: 'date-time' },
          lastUpdatedTime: { type: 'string', format: 'date-time' },
        },
      },
      ProvisioningResultLine: {
        type: 'object',
        additionalProperties: false,
        required: ['outcome'],
        description:
          'provisioned (one device) or created (bulk): keys and connectionString until keysExpireAt, then keys: "expired" (or "consumed" after a consume=true download, "unreadable" if the encryption key changed); already-exists, invalid, failed, cancelled (bulk): error; failed or cancelled (one device): failedStep and reason; an entry skipped by invalid=skip: index, and deviceId when it had one',
        properties: {
          deviceId: { type: 'string' },
          index: {
            type: 'integer',
            minimum: 0,
            description: 'Position of a skipped invalid entry in the request',
          },
          outcome: { enum: ['provisioned', 'created', 'already-exists', 'invalid', 'failed', 'cancelled'] },
          keys: { oneOf: [keys, { enum: ['expired', 'consumed', 'unreadable'] }] },
          connectionString: { type: 'string' },
          keysExpireAt: { type: 'string', format: 'date-time' },
          error: { type: 'string' },
          failedStep: {
            enum: ['create-identity', 'write-registry', 'set-initial-twin', 'call-hooks', 'activate'],
          },
          reason: { type: 'string' },
        },
      },
      JobRequest: {
        type: 'object',
        additionalProperties: false,
        required: ['type', 'target'],
        description:
          'twinUpdate jobs need twinPatch (and no method); deviceMethod jobs need method (and no twinPatch)',
        properties: {
          type: { enum: ['twinUpdate', 'deviceMethod'] },
          target: {
            oneOf: [
              {
                type: 'object',
                additionalProperties: false,
                required: ['deviceIds'],
                properties: {
                  deviceIds: { type: 'array', minItems: 1, maxItems: 10000, items: deviceId },
                },
              },
              {
                type: 'object',
                additionalProperties: false,
                required: ['where'],
                properties: {
                  where: {
                    type: 'object',
                    additionalProperties: false,
                    minProperties: 1,
                    description: 'Devices matching all of these',
                    properties: {
                      status: { enum: ['enabled', 'disabled'] },
                      metadata: {
                        type: 'object',
                        description: 'Registry metadata fields that must equal the given values',
                        propertyNames: { pattern: QUERYABLE_FIELD.source },
                        additionalProperties: scalar,
                      },
                      tags: {
                        type: 'object',
                        description:
                          'Twin tags (dotted paths allowed: site.building) that must equal the given values',
                        propertyNames: { pattern: TAG_PATH.source },
                        additionalProperties: scalar,
                      },
                    },
                  },
                },
              },
            ],
          },
          twinPatch: {
            type: 'object',
            description: 'Desired properties to merge (null removes); checked against IoT Hub twin limits',
          },
          method: {
            type: 'object',
            additionalProperties: false,
            required: ['name'],
            properties: {
              name: { type: 'string', minLength: 1, maxLength: 100 },
              payload: {},
              responseTimeoutInSeconds: { type: 'integer', minimum: 5, maximum: 300, default: 30 },
            },
          },
          startAt: { type: 'string', format: 'date-time', description: 'First run; now when absent' },
          repeat: {
            type: 'string',
            maxLength: 100,
            description:
              "ISO 8601 duration ('PT30M', at least one minute) or 5-field cron ('0 3 * * *'), in UTC",
          },
          maxExecutionTimeInSeconds: { type: 'integer', minimum: 60, maximum: 172800, default: 3600 },
          notify: {
            type: 'boolean',
            default: false,
            description: 'Post a Slack notice (or a log line without Slack) when a run ends',
          },
        },
        allOf: [
          {
            if: { properties: { type: { const: 'twinUpdate' } } },
            then: { required: ['twinPatch'], not: { required: ['method'] } },
            else: { required: ['method'], not: { required: ['twinPatch'] } },
          },
        ],
      },
      DeviceJobStatistics: {
        type: 'object',
        additionalProperties: false,
        required: ['deviceCount', 'succeededCount', 'failedCount', 'runningCount', 'pendingCount'],
        properties: {
          deviceCount: { type: 'integer', minimum: 0 },
          succeededCount: { type: 'integer', minimum: 0 },
          failedCount: { type: 'integer', minimum: 0 },
          runningCount: { type: 'integer', minimum: 0 },
          pendingCount: { type: 'integer', minimum: 0 },
        },
      },
      JobRun: {
        type: 'object',
        additionalProperties: false,
        description: 'One run: a repeating job has one per occurrence, each with one IoT Hub job per batch',
        required: ['run', 'startedAt', 'status', 'hubJobIds', 'statistics'],
        properties: {
          run: { type: 'integer', minimum: 1 },
          startedAt: { type: 'string', format: 'date-time' },
          endedAt: { type: 'string', format: 'date-time' },
          status: jobRecord.properties.status,
          hubJobIds: { type: 'array', items: { type: 'string' } },
          statistics: ref('DeviceJobStatistics'),
          failureReason: { type: 'string' },
          deviceResults: ref('DeviceResultCounts'),
        },
      },
      DeviceResultCounts: {
        type: 'object',
        additionalProperties: false,
        description:
          'Per-device outcomes kept for GET /jobs/{id}/devices, and those dropped beyond Jobs__MaxDeviceResults',
        required: ['kept', 'dropped'],
        properties: { kept: { type: 'integer', minimum: 0 }, dropped: { type: 'integer', minimum: 0 } },
      },
      DeviceJobResult: {
        type: 'object',
        additionalProperties: false,
        description: "One device's part of a job run (IoT Hub's device job)",
        required: ['deviceId', 'status'],
        properties: {
          deviceId,
          status: {
            enum: ['succeeded', 'failed'],
            description:
              'failed also when the device answered its method outside 2xx, or the job never reached it',
          },
          error: {
            type: 'object',
            additionalProperties: false,
            required: ['code', 'message'],
            description: 'Why it failed: DeviceNotOnline, NotRun, or the code IoT Hub gave',
            properties: { code: { type: 'string' }, message: { type: 'string', maxLength: 512 } },
          },
          methodResponse: {
            type: 'object',
            additionalProperties: false,
            required: ['status'],
            description: "deviceMethod jobs: the device's answer",
            properties: {
              status: { type: 'integer' },
              payloadExcerpt: {
                type: 'string',
                maxLength: 512,
                description: 'The payload as JSON text, cut',
              },
              payloadTruncated: { const: true },
            },
          },
          endedAt: { type: 'string' },
        },
      },
      JobRecord: { type: 'object', additionalProperties: false, ...jobRecord },
      JobAccepted: {
        type: 'object',
        additionalProperties: false,
        description:
          "The stored job and this API's routes for it (never Durable's management URLs: they carry the extension's system key)",
        required: [...jobRecord.required, 'statusUri', 'cancelUri'],
        properties: {
          ...jobRecord.properties,
          statusUri: { type: 'string', description: 'GET: the job and its runs (also the Location header)' },
          cancelUri: { type: 'string', description: 'POST: cancel the job' },
        },
      },
      JobDetails: {
        type: 'object',
        additionalProperties: false,
        required: jobRecord.required,
        properties: {
          ...jobRecord.properties,
          workflow: {
            type: 'object',
            additionalProperties: false,
            required: ['runtimeStatus'],
            description: "The job's orchestration, when it still exists",
            properties: {
              runtimeStatus,
              progress: {
                description: 'Custom status: { run, step, batch?, batches?, startAt?, lastRun? }',
              },
            },
          },
        },
      },
      HealthReport: {
        type: 'object',
        additionalProperties: false,
        required: ['status', 'checkedAt', 'dependencies'],
        properties: {
          status: { enum: ['ok', 'unavailable'] },
          checkedAt: { type: 'string', format: 'date-time' },
          dependencies: {
            type: 'array',
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['name', 'status', 'latencyMs'],
              properties: {
                name: { enum: ['cosmos', 'blob', 'identityStore', 'slack'] },
                status: { enum: ['ok', 'unavailable'] },
                latencyMs: { type: 'integer', minimum: 0, description: 'Time to the answer or timeout, ms' },
                reason: { enum: ['timeout', 'error'] },
              },
            },
          },
        },
      },
      Problem: {
        type: 'object',
        required: ['type', 'title', 'status'],
        properties: {
          type: { type: 'string' },
          title: { type: 'string' },
          status: { type: 'integer' },
          detail: { type: 'string' },
          instance: { type: 'string' },
          errors: {
            type: 'array',
            items: {
              type: 'object',
              required: ['path', 'message'],
              properties: { path: { type: 'string' }, message: { type: 'string' } },
            },
          },
        },
      },
    },
  },
} as const;

/** `GET /api/openapi.json`. */
export function getOpenApiDocument(): Promise<{ status: number; jsonBody: unknown }> {
  return Promise.resolve({ status: 200, jsonBody: openApiDocument });
}
