import { describe, expect, it } from 'vitest';
import { toProblemResponse } from '../../../src/http/problem.js';
import { makeJobHandlers, type JobHandlerDeps } from '../../../src/jobs/http-handlers.js';
import { makeProvisioningHandlers } from '../../../src/provisioning/http-handlers.js';
import type { ProvisioningService } from '../../../src/provisioning/provisioning-service.js';
import {
  makeWorkflowHandlers,
  type WorkflowHandlerDeps,
} from '../../../src/provisioning/workflow-http-handlers.js';
import type { ApiRequest, ApiResponse } from '../../../src/shared/api-request.js';
import { UnsupportedMediaTypeError } from '../../../src/shared/errors.js';
import type { WorkflowClient } from '../../../src/shared/workflows.js';

/** A dependency no request in this file may reach: the media type is refused before any of them is used. */
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the port the proxy stands for
function unreachable<T extends object>(name: string): T {
  return new Proxy(
    {},
    {
      get: (_target, property) => {
        throw new Error(`${name}.${String(property)} reached`);
      },
    },
  ) as T;
}

const provisioning = makeProvisioningHandlers(unreachable<ProvisioningService>('service'));
const jobDeps: JobHandlerDeps = {
  scheduledJobs: unreachable('scheduledJobs'),
  deviceResults: unreachable('deviceResults'),
  pollIntervalMs: 1000,
};
const jobs = makeJobHandlers(jobDeps);
const workflowDeps: WorkflowHandlerDeps = {
  identities: unreachable('identities'),
  work: unreachable('work'),
  results: unreachable('results'),
  keysCipher: unreachable('keysCipher'),
  hooks: [],
  registryOpsPerMinute: 100,
  maxMetadataBytes: 8192,
};
const workflows = makeWorkflowHandlers(workflowDeps);
const client = unreachable<WorkflowClient>('workflows');

/** Every route that reads a JSON body, with a body it would accept. */
const JSON_ROUTES: [string, (request: ApiRequest) => Promise<ApiResponse>, string][] = [
  ['POST /devices', provisioning.registerDevice, '{"id":"dev-1"}'],
  ['PATCH /devices/{id}', provisioning.updateDevice, '{"metadata":{"a":1}}'],
  ['POST /devices/{id}/activate', provisioning.activateDevice, '{}'],
  ['POST /devices/{id}/deactivate', provisioning.deactivateDevice, '{}'],
  ['POST /devices/{id}/reset-credentials', provisioning.resetCredentials, '{}'],
  ['PATCH /devices/{id}/twin', provisioning.updateDeviceTwin, '{"desired":{"a":1}}'],
  ['POST /jobs', (r) => jobs.createJob(r, client), '{"type":"directMethod"}'],
  ['POST /provisioning/devices', (r) => workflows.startProvisioning(r, client), '{}'],
  ['POST /provisioning/bulk', (r) => workflows.startBulkProvisioning(r, client), '[{"id":"a"}]'],
];

function request(body: string, contentType: string | undefined): ApiRequest {
  return {
    params: { id: 'dev-1' },
    query: new URLSearchParams(),
    headers: {
      get: (name) => (name.toLowerCase() === 'content-type' ? (contentType ?? null) : null),
    },
    text: () => Promise.resolve(body),
  };
}

const outcome = (call: Promise<unknown>) =>
  call.then(
    () => undefined,
    (error: unknown) => error,
  );

describe('JSON routes refuse bodies that are not declared JSON (415)', () => {
  const refused = ['text/plain', 'text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', undefined];
  const cases = JSON_ROUTES.flatMap(([route, handler, body]) =>
    refused.map((type) => [route, type ?? '(none)', handler, body, type] as const),
  );
  it.each(cases)('%s with Content-Type %s: 415 saying what to send', async (_r, _t, handler, body, type) => {
    const error = await outcome(handler(request(body, type)));
    expect(error).toBeInstanceOf(UnsupportedMediaTypeError);
    const problem = toProblemResponse(error);
    expect(problem.status).toBe(415);
    expect((JSON.parse(problem.body as string) as { detail: string }).detail).toMatch(
      /Content-Type: application\/json/,
    );
  });

  it.each(JSON_ROUTES)(
    '%s with application/json; charset=utf-8 goes past the media type check',
    async (_r, handler, body) => {
      const error = await outcome(handler(request(body, 'application/json; charset=utf-8')));
      expect(error).not.toBeInstanceOf(UnsupportedMediaTypeError);
    },
  );

  it.each(JSON_ROUTES.filter(([, , body]) => body === '{}'))(
    '%s without a body needs no Content-Type',
    async (_r, handler) => {
      const error = await outcome(handler(request('', undefined)));
      expect(error).not.toBeInstanceOf(UnsupportedMediaTypeError);
    },
  );
});
