/**
 * The route table of the device, alarm and meta operations: what src/index.ts registers and what the OpenAPI
 * document says about each (the schemas are the handlers' own, or the response schemas of src/http/schemas/).
 */
import { z } from 'zod';
import { listSchema as alarmQuerySchema } from '../../alerts/http-handlers.js';
import {
  listSchema as deviceQuerySchema,
  registerSchema,
  resetSchema,
  statusChangeSchema,
  twinPatchSchema,
  updateSchema,
} from '../../provisioning/http-handlers.js';
import { METADATA_DESCRIPTION, metadataSchema } from '../../provisioning/metadata.js';
import { under, type ApiRoute, type HeaderSpec, type ParameterSpec } from '../openapi-generator.js';
import {
  alarmPageSchema,
  alarmSchema,
  credentialsSchema,
  devicePageSchema,
  deviceSchema,
  deviceStateSchema,
  healthReportSchema,
  registeredDeviceSchema,
  twinSchema,
} from '../schemas/device-schemas.js';

const deviceIdParameter: ParameterSpec = {
  name: 'id',
  in: 'path',
  description: "IoT Hub device id: 1-128 characters of letters, digits and - . + % _ # * ? ! ( ) , : = @ $ '",
  schema: z.string().min(1).max(128),
};
const alarmIdParameter: ParameterSpec = { name: 'id', in: 'path', schema: z.string() };
const ifMatch: ParameterSpec = {
  name: 'If-Match',
  in: 'header',
  description:
    'RFC 9110: `*` (any current version) or a list of strong entity tags as the ETag header gave them; weak tags never match; empty or malformed is 400',
  schema: z.string(),
};
const etag: Record<string, HeaderSpec> = {
  ETag: { description: 'Version of the resource as a strong entity tag, for If-Match', schema: z.string() },
};
const deprecatedBareMetadata = metadataSchema.meta({
  deprecated: true,
  // A body with a top-level `metadata` key is always the {metadata} form (src/provisioning/http-handlers.ts).
  not: { required: ['metadata'] },
  description: `${METADATA_DESCRIPTION}. Deprecated: bare metadata, accepted until the Sunset date; send {"metadata": {...}}`,
});
const updateBody = z.union([updateSchema, deprecatedBareMetadata]);
const deprecationHeaders: Record<string, HeaderSpec> = {
  Deprecation: { description: 'RFC 9745, only when the deprecated bare body was sent', schema: z.string() },
  Sunset: { description: 'RFC 8594: when the bare body stops being accepted', schema: z.string() },
  Link: { description: 'rel="deprecation": the API description', schema: z.string() },
};
const device = under('/devices/{id}', 'Devices', deviceIdParameter);

export const DEVICE_ROUTES: readonly ApiRoute[] = [
  {
    operationId: 'registerDevice',
    method: 'post',
    path: '/devices',
    tags: ['Devices'],
    summary: 'Register a device: identity (with keys) and catalog entry',
    description:
      '409 when a catalog entry uses the id. An identity without a catalog entry (e.g. after data was lost) is adopted: the entry is written and the keys re-issued (or set to the given ones).',
    body: { required: true, content: { 'application/json': registerSchema } },
    responses: {
      201: {
        description: 'Registered; the only response besides reset-credentials that carries keys',
        schema: registeredDeviceSchema,
        headers: { ...etag, Location: { schema: z.string() } },
      },
    },
    problems: [400, 409, 413, 415, 422, 500, 503],
  },
  {
    operationId: 'listDevices',
    method: 'get',
    path: '/devices',
    tags: ['Devices'],
    summary: 'List or query devices (validated parameters only)',
    query: deviceQuerySchema,
    parameters: [
      {
        name: 'metadata',
        in: 'query',
        style: 'deepObject',
        description:
          'metadata.<field>=<value>; field names are identifiers other than __proto__, constructor and prototype (422), each at most once; true/false and numbers match typed values',
        schema: z.record(z.string(), z.string()),
      },
    ],
    responses: { 200: { description: 'A page of devices', schema: devicePageSchema } },
    problems: [400, 422, 500, 503],
  },
  {
    ...device('getDevice', 'get'),
    responses: { 200: { description: 'The device (never keys)', schema: deviceSchema, headers: etag } },
    problems: [400, 404, 500],
  },
  {
    ...device('updateDevice', 'patch'),
    summary: 'JSON merge patch (RFC 7396) of the metadata: {"metadata": {...}} (bare metadata is deprecated)',
    parameters: [ifMatch],
    body: {
      required: true,
      content: {
        'application/merge-patch+json': updateBody,
        'application/json': updateBody,
      },
    },
    responses: {
      200: { description: 'Updated', schema: deviceSchema, headers: { ...etag, ...deprecationHeaders } },
    },
    problems: [400, 404, 412, 413, 415, 422, 500],
  },
  {
    ...device('unregisterDevice', 'delete'),
    parameters: [{ name: 'purgeState', in: 'query', schema: z.boolean().default(false) }, ifMatch],
    responses: { 204: { description: 'Unregistered' } },
    problems: [400, 404, 412, 422, 500],
  },
  {
    ...device('activateDevice', 'post', '/activate'),
    parameters: [ifMatch],
    body: { content: { 'application/json': statusChangeSchema } },
    responses: { 200: { description: 'Enabled', schema: deviceSchema, headers: etag } },
    problems: [400, 404, 412, 413, 415, 422, 500],
  },
  {
    ...device('deactivateDevice', 'post', '/deactivate'),
    summary: 'Disable the device; the identity store refuses it at once',
    parameters: [ifMatch],
    body: { content: { 'application/json': statusChangeSchema } },
    responses: { 200: { description: 'Disabled', schema: deviceSchema, headers: etag } },
    problems: [400, 404, 412, 413, 415, 422, 500],
  },
  {
    ...device('resetDeviceCredentials', 'post', '/reset-credentials'),
    description:
      'Concurrent resets of one device are serialized on the identity: the one that wins answers 200 with the keys the identity store holds; the others answer 409 (retry for a fresh pair).',
    body: { content: { 'application/json': resetSchema } },
    responses: { 200: { description: 'New keys', schema: credentialsSchema } },
    problems: [400, 404, 409, 413, 415, 422, 500],
  },
  {
    ...device('getDeviceTwin', 'get', '/twin'),
    responses: {
      200: { description: 'The twin (desired and reported properties)', schema: twinSchema, headers: etag },
    },
    problems: [400, 404, 500, 503],
  },
  {
    ...device('updateDeviceTwin', 'patch', '/twin'),
    summary: 'Merge desired properties (null removes); checked against IoT Hub twin limits first',
    parameters: [ifMatch],
    body: { required: true, content: { 'application/json': twinPatchSchema } },
    responses: { 200: { description: 'The updated twin', schema: twinSchema, headers: etag } },
    problems: [400, 404, 412, 413, 415, 422, 500, 503],
  },
  {
    ...device('getDeviceState', 'get', '/state'),
    summary: 'Last-known values of the device',
    responses: { 200: { description: 'Last-known values', schema: deviceStateSchema } },
    problems: [400, 404, 500],
  },
  {
    operationId: 'listAlarms',
    method: 'get',
    path: '/alarms',
    tags: ['Alarms'],
    query: alarmQuerySchema,
    responses: { 200: { description: 'A page of alarms', schema: alarmPageSchema } },
    problems: [400, 422, 500, 503],
  },
  ...(['acknowledge', 'close'] as const).map((action): ApiRoute => ({
    operationId: `${action}Alarm`,
    method: 'post',
    path: `/alarms/{id}/${action}`,
    tags: ['Alarms'],
    pathParameters: [alarmIdParameter],
    responses: {
      200: { description: action === 'close' ? 'Closed' : 'Acknowledged', schema: alarmSchema },
    },
    problems: [400, 404, 409, 500, 503],
  })),
  {
    operationId: 'getHealth',
    method: 'get',
    path: '/health',
    tags: ['Meta'],
    summary: 'Whether Cosmos DB, Blob storage, the identity store and (when configured) Slack answer',
    description:
      'Anonymous and cheap: one probe round (2 s timeout each) is shared by all requests for 5 s. Names and latencies only, never endpoints or keys. The Slack probe opens a TLS connection to the webhook host and sends nothing.',
    anonymous: true,
    responses: {
      200: {
        description: 'Every dependency answers',
        schema: healthReportSchema,
        headers: { 'Cache-Control': { schema: z.literal('no-store') } },
      },
      503: {
        description: 'At least one dependency does not answer',
        schema: healthReportSchema,
        headers: { 'Retry-After': { schema: z.number().int() } },
      },
    },
    problems: [],
  },
  {
    operationId: 'openApiDocument',
    method: 'get',
    path: '/openapi.json',
    tags: ['Meta'],
    anonymous: true,
    responses: { 200: { description: 'This document', schema: z.record(z.string(), z.unknown()) } },
    problems: [],
  },
];
