/**
 * Scheduled jobs where the local engine now behaves as Azure's Durable extension: an activity failure reaches
 * the orchestrator in the extension's shape (`Activity function '<name>' failed: Result: Failure\nException: …`),
 * and continue-as-new drops a cancel event raised while a repeating job's last episode runs.
 */
import { HttpRequest } from '@azure/functions';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import { createAdapters, type Adapters } from '../../../src/infra/adapters.js';
import { makeJobHandlers } from '../../../src/jobs/http-handlers.js';
import type { ScheduledJobRecord, ScheduledJobRun } from '../../../src/jobs/ports.js';
import type { ApiResponse } from '../../../src/shared/api-request.js';
import { InvalidTransitionError } from '../../../src/shared/errors.js';
import type { WorkflowClient } from '../../../src/shared/workflows.js';
import { DurableEngine, type OrchestratorHandler } from '../../../tools/local-runtime/durable-engine.js';
import { EventType } from '../../../tools/local-runtime/durable-history.js';
import { engineWorkflowClient } from '../../../tools/local-runtime/engine-workflow-client.js';
import { engineFromRegistrations, replaySchemaUnderTest } from '../../support/durable.js';
import { byTrigger, loadEntryPoint, type Registration } from '../../support/entry-point.js';
import { testSettings } from '../../support/local-env.js';

const settings = testSettings({
  IdentityTableName: `jobfidelity${Date.now().toString(36)}`,
  Jobs__PollIntervalSeconds: '10',
});
let registrations: Registration[];
let adapters: Adapters;
let handlers: ReturnType<typeof makeJobHandlers>;

beforeAll(async () => {
  registrations = await loadEntryPoint(settings);
  adapters = createAdapters(loadConfig(settings));
  handlers = makeJobHandlers({
    scheduledJobs: adapters.scheduledJobs,
    deviceResults: adapters.jobDeviceResults,
    pollIntervalMs: 10_000,
  });
  await adapters.identities.create('fidelity-dev-1');
  const at = new Date().toISOString();
  await adapters.catalog.create({
    id: 'fidelity-dev-1',
    status: 'enabled',
    metadata: {},
    createdAt: at,
    updatedAt: at,
  });
});

const request = (method: string, path: string, body?: unknown, params: Record<string, string> = {}) =>
  new HttpRequest({
    url: `http://localhost/api/${path}`,
    method,
    params,
    headers: { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: { string: JSON.stringify(body) } }),
  });

async function createJob(engine: DurableEngine, body: unknown): Promise<string> {
  const response = (await handlers.createJob(
    request('POST', 'jobs', body),
    engineWorkflowClient(engine),
  )) as ApiResponse & {
    jsonBody: ScheduledJobRecord;
  };
  expect(response.status).toBe(202);
  return response.jsonBody.id;
}

const fail = (): never => {
  throw new Error('no engine yet');
};

const getJob = async (engine: DurableEngine, id: string) =>
  (
    (await handlers.getJob(
      request('GET', `jobs/${id}`, undefined, { id }),
      engineWorkflowClient(engine),
    )) as {
      jsonBody: ScheduledJobRecord;
    }
  ).jsonBody;

describe('scheduledJob under the Durable extension shapes', () => {
  it('records the thrown reason of a failed activity (not "Result: Failure") in the run, the status and the notice', async () => {
    const notices: ScheduledJobRun[] = [];
    const engine = engineFromRegistrations(registrations, 'virtual', (name, input) => {
      if (name === 'jobNotify') notices.push((input as { run: ScheduledJobRun }).run);
      if (name === 'jobResolveTarget') return Promise.reject(new Error('device catalog unavailable'));
      return undefined;
    });
    const id = await createJob(engine, {
      type: 'twinUpdate',
      target: { deviceIds: ['fidelity-dev-1'] },
      twinPatch: { fidelity: 1 },
      notify: true,
    });
    const done = await engine.whenDone(id);
    // The engine gave the orchestrator the extension's shape...
    const failed = engine.executions(id)[0]?.history.find((e) => e.EventType === EventType.TaskFailed);
    expect(String(failed?.Reason)).toMatch(
      /^Activity function 'jobResolveTarget' failed: Result: Failure\nException: device catalog unavailable\nStack: /,
    );
    // ...and the app shows what the activity threw.
    expect(done.output).toMatchObject({
      status: 'failed',
      lastRun: { failureReason: 'device catalog unavailable' },
    });
    expect(done.customStatus).toMatchObject({
      step: 'failed',
      lastRun: { failureReason: 'device catalog unavailable' },
    });
    const job = await getJob(engine, id);
    expect(job.status).toBe('failed');
    expect(job.runs[0]?.failureReason).toBe('device catalog unavailable');
    expect(notices.map((n) => n.failureReason)).toEqual(['device catalog unavailable']);
  });

  it('stops a repeating job cancelled while the episode that continues as new runs (the event itself is dropped)', async () => {
    let id = '';
    const held: { engine?: DurableEngine } = {};
    let cancelled: ApiResponse | undefined;
    const scheduledJob = byTrigger(registrations, 'orchestrationTrigger').get(
      'scheduledJob',
    ) as OrchestratorHandler;
    // The cancel (API: recorded on the job, then raised) arrives while the orchestrator computes continue-as-new.
    const cancelling: OrchestratorHandler = async (trigger, context) => {
      const state = await scheduledJob(trigger, context);
      if (!cancelled && JSON.stringify((state as { actions?: unknown }).actions).includes('"actionType":4')) {
        cancelled = await handlers.cancelJob(
          request('POST', `jobs/${id}/cancel`, undefined, { id }),
          engineWorkflowClient(held.engine ?? fail()),
        );
      }
      return state;
    };
    const engine = new DurableEngine({
      replaySchema: replaySchemaUnderTest(),
      orchestrators: new Map([['scheduledJob', cancelling]]),
      activities: byTrigger(registrations, 'activityTrigger'),
      clock: 'manual',
    });
    held.engine = engine;
    id = await createJob(engine, {
      type: 'twinUpdate',
      target: { deviceIds: ['fidelity-dev-1'] },
      twinPatch: { heartbeat: 3 },
      repeat: 'PT1H',
    });
    await engine.idle();
    expect(cancelled?.status).toBe(202);
    // The second execution never saw the event (dropped with the first execution's unprocessed events)...
    const second = engine.executions(id)[1];
    expect(second?.history.filter((e) => e.EventType === EventType.EventRaised)).toEqual([]);
    // ...yet it stops at its start: the cancel is on the job record. No second run, no wait for the next hour.
    const done = await engine.whenDone(id);
    expect(done.output).toEqual({ jobId: id, status: 'cancelled', runs: 1 });
    const job = await getJob(engine, id);
    expect(job.status).toBe('cancelled');
    expect(job.cancelRequestedAt).toBeDefined();
    expect(job.runs.map((r) => [r.run, r.status])).toEqual([[1, 'completed']]);
  });

  it('a cancel that races the end of the job answers 409, not 500', async () => {
    const engine = engineFromRegistrations(registrations, 'virtual');
    const id = await createJob(engine, {
      type: 'twinUpdate',
      target: { deviceIds: ['fidelity-dev-1'] },
      twinPatch: { raced: 1 },
    });
    await engine.whenDone(id);
    const real = engineWorkflowClient(engine);
    let reads = 0;
    // The handler's first status read happened just before the job ended: it still said Running.
    const racing: WorkflowClient = Object.assign(Object.create(real) as WorkflowClient, {
      status: async (instanceId: string) => {
        const status = await real.status(instanceId);
        return reads++ === 0 && status ? { ...status, runtimeStatus: 'Running' as const } : status;
      },
    });
    await expect(
      handlers.cancelJob(request('POST', `jobs/${id}/cancel`, undefined, { id }), racing),
    ).rejects.toBeInstanceOf(InvalidTransitionError);
  });
});
