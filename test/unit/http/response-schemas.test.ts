/**
 * The response schemas the document is generated from (src/http/schemas/) state exactly the domain types the
 * handlers answer with, where those types are as narrow as the schema: checked by the compiler (`npm run
 * typecheck` covers this file), so a field added to or removed from either side, or typed differently, fails
 * the build. (Loose objects such as Alarm and DeviceState, and types wider than the contract,
 * such as HealthReport's probe names, are covered by the responses the integration tests validate instead.)
 */
import { describe, expectTypeOf, it } from 'vitest';
import type { z } from 'zod';
import { deviceSchema } from '../../../src/http/schemas/device-schemas.js';
import { deviceJobResultSchema, jobRecordSchema } from '../../../src/http/schemas/workflow-schemas.js';
import type { DeviceJobResult, ScheduledJobRecord } from '../../../src/jobs/ports.js';
import type { publicRecord } from '../../../src/provisioning/catalog.js';

describe('response schemas', () => {
  it('are the domain types the handlers answer with', () => {
    expectTypeOf<ReturnType<typeof publicRecord>>().toEqualTypeOf<z.output<typeof deviceSchema>>();
    // The stored request is `unknown` to the job store (it holds what jobRequestSchema validated).
    expectTypeOf<Omit<ScheduledJobRecord, 'request'>>().toEqualTypeOf<
      Omit<z.output<typeof jobRecordSchema>, 'request'>
    >();
    expectTypeOf<DeviceJobResult>().toEqualTypeOf<z.output<typeof deviceJobResultSchema>>();
    // And the check is not vacuous: a device with keys is not a Device.
    expectTypeOf<{ keys: string } & ReturnType<typeof publicRecord>>().not.toEqualTypeOf<
      z.output<typeof deviceSchema>
    >();
  });
});
