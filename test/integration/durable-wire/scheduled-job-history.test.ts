/**
 * Recorded histories in the Durable extension's wire format, fed to the scheduledJob orchestrator exactly as the
 * entry point registers it (`df.app.orchestration`), and the OrchestratorState JSON it answers: what the
 * extension in Azure would receive. The histories are JSON (test/fixtures/durable/scheduled-job-wire.json) in the
 * shape the extension serializes for out-of-proc workers (see `source` there).
 */
import { readFileSync } from 'node:fs';
import { InvocationContext } from '@azure/functions';
import { beforeAll, describe, expect, it } from 'vitest';
import { orchestratorOf } from '../../support/durable.js';
import { loadEntryPoint, type Registration } from '../../support/entry-point.js';
import { testSettings } from '../../support/local-env.js';

interface WireCase {
  name: string;
  trigger: Record<string, unknown>;
  expected: unknown;
}

const fixtures = JSON.parse(
  readFileSync(new URL('../../fixtures/durable/scheduled-job-wire.json', import.meta.url), 'utf8'),
) as { cases: WireCase[] };

let registrations: Registration[];
beforeAll(async () => {
  registrations = await loadEntryPoint(testSettings());
});

/** What the worker sends back to the extension: the state as JSON (a failed orchestrator's rides in its error). */
async function reply(trigger: Record<string, unknown>): Promise<unknown> {
  const handler = orchestratorOf(registrations, 'scheduledJob');
  const context = new InvocationContext({ functionName: 'scheduledJob', invocationId: 'wire' });
  // The host hands the trigger over as parsed JSON: a fresh copy per call (the library revives timestamps in place).
  const state = await handler(JSON.parse(JSON.stringify(trigger)) as unknown, context);
  return JSON.parse(JSON.stringify(state)) as unknown;
}

describe('scheduledJob answers recorded extension histories', () => {
  it.each(fixtures.cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    expect(await reply(c.trigger)).toEqual(c.expected);
  });
});
