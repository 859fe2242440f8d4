/**
 * The OpenAPI 3.1 description of the whole HTTP API, served at `GET /api/openapi.json`, generated from the route
 * table (src/http/routes/) and the zod schemas the handlers validate with (src/http/openapi-generator.ts). The
 * route table also drives the HTTP registrations of src/index.ts. Tests check that the document is valid
 * OpenAPI, that it lists every registered HTTP function and nothing else, and that real responses match it.
 */
import { buildOpenApiDocument, type ApiRoute } from './openapi-generator.js';
import { DEVICE_ROUTES } from './routes/device-routes.js';
import { WORKFLOW_ROUTES } from './routes/workflow-routes.js';
import { problemSchema } from './schemas/device-schemas.js';

/** Every HTTP operation of the API, in the document's order. */
export const API_ROUTES: readonly ApiRoute[] = [...DEVICE_ROUTES, ...WORKFLOW_ROUTES];

export const openApiDocument = buildOpenApiDocument(
  {
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
      { name: 'Devices', description: 'Device identities, catalog entries, twins and last-known state' },
      { name: 'Alarms', description: 'Alarms raised from anomalies' },
      {
        name: 'Workflows',
        description: 'Durable provisioning workflows: one device, or up to 10,000 in bulk',
      },
      {
        name: 'Jobs',
        description: 'Scheduled twin-update and direct-method jobs over many devices (IoT Hub jobs)',
      },
      { name: 'Meta', description: 'This document and the health of the dependencies' },
    ],
    securitySchemes: { functionKey: { type: 'apiKey', in: 'header', name: 'x-functions-key' } },
  },
  API_ROUTES,
  problemSchema,
);

/** `GET /api/openapi.json`. */
export function getOpenApiDocument(): Promise<{ status: number; jsonBody: unknown }> {
  return Promise.resolve({ status: 200, jsonBody: openApiDocument });
}
