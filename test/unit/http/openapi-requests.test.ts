/**
 * The request bodies the document accepts are the ones the handlers' zod schemas accept (the document is
 * generated from them): a corpus of bodies per operation, each judged by both. Where a handler checks more than
 * a JSON Schema can say (reserved metadata names, the repeat syntax), the document is wider, and the test says so.
 */
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { checkJobRequest, jobRequestSchema } from '../../../src/jobs/job-spec.js';
import {
  registerSchema,
  resetSchema,
  twinPatchSchema,
  updateBody,
} from '../../../src/provisioning/http-handlers.js';
import { specSchema } from '../../../src/provisioning/workflow-http-handlers.js';
import { requestProblems } from '../../support/openapi.js';

const accepts =
  (schema: z.ZodType, extra: (value: never) => unknown = () => undefined) =>
  (body: unknown): boolean => {
    const parsed = schema.safeParse(body);
    if (!parsed.success) return false;
    try {
      extra(parsed.data as never);
      return true;
    } catch {
      return false;
    }
  };

const keys = { primaryKey: 'a', secondaryKey: 'b' };
const twinJob = { type: 'twinUpdate', target: { deviceIds: ['d1'] }, twinPatch: { a: 1 } };
const methodJob = {
  type: 'deviceMethod',
  target: { where: { status: 'enabled' } },
  method: { name: 'reboot' },
};
const CASES: { operationId: string; handler: (body: unknown) => boolean; bodies: unknown[] }[] = [
  {
    operationId: 'registerDevice',
    handler: accepts(registerSchema),
    bodies: [
      {},
      { id: 'a' },
      { id: 5 },
      { keys },
      { keys: { primaryKey: 'a' } },
      { metadata: { a: 1 } },
      { metadata: [1] },
      { metadata: 'x' },
      { extra: 1 },
    ],
  },
  {
    operationId: 'resetDeviceCredentials',
    handler: accepts(resetSchema),
    bodies: [{}, { keys }, { keys: {} }, { keys, extra: 1 }],
  },
  {
    operationId: 'updateDevice',
    handler: (body) => {
      try {
        updateBody(body);
        return true;
      } catch {
        return false;
      }
    },
    bodies: [
      { metadata: { a: 1 } },
      { a: 1 },
      {},
      { metadata: 'x' },
      { metadata: { a: 1 }, x: 1 },
      { metadata: null },
      [1],
      { __proto__x: 1, metadata: {} },
    ],
  },
  {
    operationId: 'updateDeviceTwin',
    handler: accepts(twinPatchSchema),
    bodies: [{ desired: { a: 1 } }, {}, { desired: 1 }, { desired: {}, x: 1 }, { desired: [] }],
  },
  {
    operationId: 'startProvisioning',
    handler: accepts(specSchema),
    bodies: [
      {},
      { id: 'dev-1' },
      { id: 'bad id' },
      { id: 'x'.repeat(129) },
      { metadata: { site: 'a' } },
      { keys },
    ],
  },
  {
    operationId: 'createJob',
    handler: accepts(jobRequestSchema, checkJobRequest),
    bodies: [
      twinJob,
      methodJob,
      { ...twinJob, twinPatch: undefined },
      { ...twinJob, method: { name: 'm' } },
      { ...methodJob, method: undefined },
      { ...methodJob, target: { where: {} } },
      { ...methodJob, target: { deviceIds: [] } },
      { ...methodJob, target: { deviceIds: ['a'], where: { status: 'enabled' } } },
      { ...methodJob, method: { name: '' } },
      { ...methodJob, method: { name: 'm', responseTimeoutInSeconds: 4 } },
      { ...methodJob, startAt: 'yesterday' },
      { ...methodJob, startAt: '2026-12-02T10:00:00Z' },
      { ...methodJob, maxExecutionTimeInSeconds: 59 },
      { ...methodJob, repeat: 'PT30M' },
      { ...methodJob, target: { where: { metadata: { 'not-a-name': 1 } } } },
      { ...methodJob, target: { where: { tags: { 'site.building': 'b1' } } } },
      { ...methodJob, notify: 'yes' },
    ],
  },
];

describe('request bodies in openapi.json', () => {
  for (const { operationId, handler, bodies } of CASES) {
    it(`${operationId}: the document accepts what the handler accepts`, () => {
      for (const body of bodies) {
        const documented = requestProblems(operationId, JSON.parse(JSON.stringify(body)) as unknown);
        expect({ body, accepted: documented.length === 0 }).toEqual({ body, accepted: handler(body) });
      }
      // Both sides accept some and refuse some: the corpus is not one-sided.
      expect(new Set(bodies.map(handler)).size).toBe(2);
    });
  }

  it('is wider where the handler checks more than JSON Schema states', () => {
    const wider: [string, unknown][] = [
      ['registerDevice', { metadata: { constructor: 1 } }],
      ['createJob', { ...methodJob, repeat: 'every day' }],
    ];
    for (const [operationId, body] of wider)
      expect(requestProblems(operationId, body), operationId).toEqual([]);
    expect(accepts(registerSchema)({ metadata: { constructor: 1 } })).toBe(false);
    expect(accepts(jobRequestSchema, checkJobRequest)({ ...methodJob, repeat: 'every day' })).toBe(false);
  });
});
