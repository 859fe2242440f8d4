/**
 * The OpenAPI 3.1 description of the whole HTTP API, served at `GET /api/openapi.json`. Tests check that it is
 * a valid OpenAPI document, that it lists every registered HTTP function, and that real responses match it.
 */

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
          400: 'Malformed JSON or invalid id',
          404: 'Unknown device',
          409: 'Duplicate device id, or a state change the resource does not allow',
          412: 'ETag mismatch',
          422: 'The body or query breaks the schema',
          429: 'Throttled by a backing service',
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

export const openApiDocument = {
  openapi: '3.1.0',
  info: {
    title: 'IoT Functions backend',
    version: '0.1.0',
    description: 'Provisioning API (seed 002 §3.4) and last-known device state.',
  },
  servers: [{ url: '/api' }],
  security: [{ functionKey: [] }],
  paths: {
    '/devices': {
      post: {
        operationId: 'registerDevice',
        summary: 'Register a device: identity (with keys) and registry entry',
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
          ...errors(400, 409, 422, 429, 500),
        },
      },
      get: {
        operationId: 'listDevices',
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
              'metadata.<field>=<value>; field names are identifiers; true/false and numbers match typed values',
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
          ...errors(400, 422, 429, 500),
        },
      },
    },
    '/devices/{id}': {
      parameters: [idParam],
      get: {
        operationId: 'getDevice',
        responses: {
          '200': ok('The device (never keys)', ref('Device'), etagHeader),
          ...errors(400, 404, 500),
        },
      },
      patch: {
        operationId: 'updateDevice',
        summary: 'JSON merge patch (RFC 7396) of the metadata',
        parameters: [{ name: 'If-Match', in: 'header', schema: { type: 'string' } }],
        requestBody: {
          required: true,
          content: { 'application/merge-patch+json': { schema: metadata }, ...json(metadata) },
        },
        responses: { '200': ok('Updated', ref('Device'), etagHeader), ...errors(400, 404, 412, 422, 500) },
      },
      delete: {
        operationId: 'unregisterDevice',
        parameters: [{ name: 'purgeState', in: 'query', schema: { type: 'boolean', default: false } }],
        responses: { '204': { description: 'Unregistered' }, ...errors(400, 404, 422, 500) },
      },
    },
    '/devices/{id}/activate': {
      parameters: [idParam],
      post: {
        operationId: 'activateDevice',
        requestBody: { content: json(ref('StatusChange')) },
        responses: { '200': ok('Enabled', ref('Device'), etagHeader), ...errors(400, 404, 422, 500) },
      },
    },
    '/devices/{id}/deactivate': {
      parameters: [idParam],
      post: {
        operationId: 'deactivateDevice',
        summary: 'Disable the device; the identity store refuses it at once',
        requestBody: { content: json(ref('StatusChange')) },
        responses: { '200': ok('Disabled', ref('Device'), etagHeader), ...errors(400, 404, 422, 500) },
      },
    },
    '/devices/{id}/reset-credentials': {
      parameters: [idParam],
      post: {
        operationId: 'resetDeviceCredentials',
        requestBody: {
          content: json({ type: 'object', additionalProperties: false, properties: { keys } }),
        },
        responses: { '200': ok('New keys', ref('Credentials')), ...errors(400, 404, 422, 500) },
      },
    },
    '/devices/{id}/twin': {
      parameters: [idParam],
      get: {
        operationId: 'getDeviceTwin',
        responses: {
          '200': ok('The twin (desired and reported properties)', ref('Twin'), etagHeader),
          ...errors(400, 404, 429, 500),
        },
      },
      patch: {
        operationId: 'updateDeviceTwin',
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
          ...errors(400, 404, 412, 422, 429, 500),
        },
      },
    },
    '/devices/{id}/state': {
      parameters: [idParam],
      get: {
        operationId: 'getDeviceState',
        summary: 'Last-known values of the device',
        responses: { '200': ok('Last-known values', ref('DeviceState')), ...errors(400, 404, 500) },
      },
    },
    '/alarms': {
      get: {
        operationId: 'listAlarms',
        parameters: [
          { name: 'deviceId', in: 'query', schema: { type: 'string' } },
          { name: 'status', in: 'query', schema: { enum: ['open', 'acknowledged', 'closed'] } },
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
          ...errors(422, 500),
        },
      },
    },
    '/alarms/{id}/acknowledge': {
      parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
      post: {
        operationId: 'acknowledgeAlarm',
        responses: { '200': ok('Acknowledged', ref('Alarm')), ...errors(404, 409, 500) },
      },
    },
    '/alarms/{id}/close': {
      parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
      post: {
        operationId: 'closeAlarm',
        responses: { '200': ok('Closed', ref('Alarm')), ...errors(404, 409, 500) },
      },
    },
    '/openapi.json': {
      get: {
        operationId: 'openApiDocument',
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
          notification: { enum: ['pending', 'sent', 'logged', 'undeliverable'] },
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
