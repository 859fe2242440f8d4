/**
 * Scheduled jobs on the local stack (no IoT Hub: the local job runner, twins in Azurite tables, the device catalog
 * in the local Cosmos DB server), run through durable-functions' replay engine with the orchestrator and
 * activities the entry point registers.
 */
import { HttpRequest } from '@azure/functions';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import { createAdapters, type Adapters } from '../../../src/infra/adapters.js';
import { makeJobHandlers } from '../../../src/jobs/http-handlers.js';
import type { ScheduledJobRecord } from '../../../src/jobs/ports.js';
import type { ApiResponse } from '../../../src/shared/api-request.js';
import { EventType, type DurableEngine } from '../../../tools/local-runtime/durable-engine.js';
import { engineWorkflowClient } from '../../../tools/local-runtime/engine-workflow-client.js';
import { engineFromRegistrations, nonDeterministicEpisodes, orchestratorOf } from '../../support/durable.js';
import { loadEntryPoint, type Registration } from '../../support/entry-point.js';
import { testSettings } from '../../support/local-env.js';
import { responseProblems } from '../../support/openapi.js';

const settings = testSettings({
  IdentityTableName: `jobidentities${Date.now().toString(36)}`,
  Jobs__PollIntervalSeconds: '10',
  // Small, so that one job here goes beyond it.
  Jobs__MaxDeviceResults: '2',
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
  for (const [id, site] of [
    ['job-dev-1', 'north'],
    ['job-dev-2', 'north'],
    ['job-dev-3', 'south'],
  ] as const) {
    await adapters.identities.create(id);
    const at = new Date().toISOString();
    await adapters.catalog.create({
      id,
      status: 'enabled',
      metadata: { site },
      createdAt: at,
      updatedAt: at,
    });
  }
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

const getJob = async (engine: DurableEngine, id: string) =>
  (
    (await handlers.getJob(
      request('GET', `jobs/${id}`, undefined, { id }),
      engineWorkflowClient(engine),
    )) as {
      jsonBody: ScheduledJobRecord & { workflow?: { runtimeStatus: string } };
    }
  ).jsonBody;

describe('scheduledJob workflow on the local job runner', () => {
  it('runs a twin update on a metadata target, records the outcome and patches exactly the matching twins', async () => {
    const engine = engineFromRegistrations(registrations);
    const id = await createJob(engine, {
      type: 'twinUpdate',
      target: { where: { metadata: { site: 'north' } } },
      twinPatch: { firmware: { channel: 'beta' } },
    });
    const done = await engine.whenDone(id);
    expect(done.runtimeStatus).toBe('Completed');
    const job = await getJob(engine, id);
    expect(job.status).toBe('completed');
    expect(job.workflow?.runtimeStatus).toBe('Completed');
    expect(job.runs).toEqual([
      expect.objectContaining({
        run: 1,
        status: 'completed',
        hubJobIds: [`${id}-r1-b0`],
        statistics: expect.objectContaining({ deviceCount: 2, succeededCount: 2, failedCount: 0 }) as unknown,
      }),
    ]);
    expect((await adapters.twins.get('job-dev-1'))?.desired).toMatchObject({ firmware: { channel: 'beta' } });
    expect((await adapters.twins.get('job-dev-3'))?.desired).not.toHaveProperty('firmware');
    expect(await nonDeterministicEpisodes(engine, id, orchestratorOf(registrations, 'scheduledJob'))).toEqual(
      [],
    );
  });

  it('counts a direct method to devices that are not connected as failed, as IoT Hub does', async () => {
    const engine = engineFromRegistrations(registrations);
    const id = await createJob(engine, {
      type: 'deviceMethod',
      target: { deviceIds: ['job-dev-1', 'job-dev-3'] },
      method: { name: 'reboot', payload: { delaySeconds: 5 } },
      notify: true,
    });
    await engine.whenDone(id);
    const job = await getJob(engine, id);
    expect(job.runs[0]?.statistics).toMatchObject({ deviceCount: 2, succeededCount: 0, failedCount: 2 });
  });

  it('runs a job scheduled 10 days ahead at its startAt, through the long-timer segments of the replay schema', async () => {
    const engine = engineFromRegistrations(registrations);
    const DAY = 24 * 3_600_000;
    const from = engine.now().getTime();
    const startAt = new Date(from + 10 * DAY).toISOString();
    const id = await createJob(engine, {
      type: 'twinUpdate',
      target: { deviceIds: ['job-dev-2'] },
      twinPatch: { tenDays: true },
      startAt,
    });
    expect((await engine.whenDone(id)).runtimeStatus).toBe('Completed');
    const job = await getJob(engine, id);
    expect(job.runs).toEqual([expect.objectContaining({ run: 1, status: 'completed', startedAt: startAt })]);
    const timers = (engine.executions(id)[0]?.history ?? [])
      .filter((e) => e.EventType === EventType.TimerCreated)
      .map((e) => (e.FireAt as Date).toISOString());
    // Azure Storage: at most 6 days per timer, 3-day segments, the last one ends at startAt. V1: one timer.
    expect(timers.slice(0, engine.replaySchema === 'latest' ? 3 : 1)).toEqual(
      engine.replaySchema === 'latest'
        ? [new Date(from + 3 * DAY).toISOString(), new Date(from + 6 * DAY).toISOString(), startAt]
        : [startAt],
    );
    expect(await nonDeterministicEpisodes(engine, id, orchestratorOf(registrations, 'scheduledJob'))).toEqual(
      [],
    );
  });

  it('waits for startAt on a durable timer, and a cancel during the wait ends the job without running it', async () => {
    const engine = engineFromRegistrations(registrations, 'manual');
    const startAt = new Date(engine.now().getTime() + 3_600_000).toISOString();
    const id = await createJob(engine, {
      type: 'twinUpdate',
      target: { deviceIds: ['job-dev-2'] },
      twinPatch: { never: true },
      startAt,
    });
    await engine.idle();
    expect(engine.status(id)?.customStatus).toMatchObject({ step: 'scheduled', startAt });
    expect((await getJob(engine, id)).nextRunAt).toBe(startAt);

    const cancel = await handlers.cancelJob(
      request('DELETE', `jobs/${id}`, undefined, { id }),
      engineWorkflowClient(engine),
    );
    expect(cancel.status).toBe(202);
    expect((await engine.whenDone(id)).output).toEqual({ jobId: id, status: 'cancelled', runs: 0 });
    expect((await getJob(engine, id)).status).toBe('cancelled');
    expect((await adapters.twins.get('job-dev-2'))?.desired).not.toHaveProperty('never');
    // Cancelling again: nothing left to cancel.
    await expect(
      handlers.cancelJob(request('DELETE', `jobs/${id}`, undefined, { id }), engineWorkflowClient(engine)),
    ).rejects.toMatchObject({ code: 'invalid-transition' });
  });

  it('repeats with continue-as-new on an ISO 8601 interval until cancelled, keeping each run', async () => {
    const engine = engineFromRegistrations(registrations, 'manual');
    const id = await createJob(engine, {
      type: 'twinUpdate',
      target: { deviceIds: ['job-dev-3'] },
      twinPatch: { heartbeat: 1 },
      repeat: 'PT1H',
    });
    await engine.idle();
    engine.advance(3_600_000);
    await engine.idle();
    // Two runs done, the third waiting for its time: three executions, each with its own history.
    expect(engine.executions(id).map((e) => (e.input as { run: number }).run)).toEqual([1, 2, 3]);
    const job = await getJob(engine, id);
    expect(job.status).toBe('scheduled');
    expect(job.runs.map((r) => [r.run, r.status])).toEqual([
      [1, 'completed'],
      [2, 'completed'],
    ]);
    expect(job.nextRunAt).toBe(new Date(engine.now().getTime() + 3_600_000).toISOString());

    await handlers.cancelJob(
      request('DELETE', `jobs/${id}`, undefined, { id }),
      engineWorkflowClient(engine),
    );
    expect((await engine.whenDone(id)).output).toMatchObject({ status: 'cancelled', runs: 2 });
    expect(await nonDeterministicEpisodes(engine, id, orchestratorOf(registrations, 'scheduledJob'))).toEqual(
      [],
    );
  });

  it.each(['jobRecord', 'jobNotify'])(
    'does not lose a cancel that arrives while %s runs before the next occurrence (no continue-as-new)',
    async (activity) => {
      let id = '';
      let injected = false;
      const engine = engineFromRegistrations(registrations, 'manual', (name, input) => {
        const { status } = input as { status?: string };
        if (name === activity && !injected && (activity === 'jobNotify' || status === 'scheduled')) {
          injected = true;
          engine.raiseEvent(id, 'cancel', { at: name });
        }
      });
      id = await createJob(engine, {
        type: 'twinUpdate',
        target: { deviceIds: ['job-dev-3'] },
        twinPatch: { heartbeat: 2 },
        repeat: 'PT1H',
        notify: true,
      });
      await engine.idle();
      expect(injected).toBe(true);
      expect(engine.executions(id)).toHaveLength(1); // no next occurrence was scheduled
      const done = await engine.whenDone(id);
      expect(done.output).toMatchObject({ status: 'cancelled', runs: 1 });
      const job = await getJob(engine, id);
      expect(job.status).toBe('cancelled');
      expect(job.nextRunAt).toBeUndefined();
      expect(
        await nonDeterministicEpisodes(engine, id, orchestratorOf(registrations, 'scheduledJob')),
      ).toEqual([]);
    },
  );

  it("answers 202 with this API's own status and cancel routes, and POST .../cancel cancels like DELETE", async () => {
    const engine = engineFromRegistrations(registrations, 'manual');
    const startAt = new Date(engine.now().getTime() + 3_600_000).toISOString();
    const response = (await handlers.createJob(
      request('POST', 'jobs', {
        type: 'twinUpdate',
        target: { deviceIds: ['job-dev-2'] },
        twinPatch: { never: true },
        startAt,
      }),
      engineWorkflowClient(engine),
    )) as ApiResponse & { jsonBody: ScheduledJobRecord & { statusUri?: string; cancelUri?: string } };
    const id = response.jsonBody.id;
    expect(response.headers).toMatchObject({ location: `/api/jobs/${id}` });
    expect(response.jsonBody).toMatchObject({
      statusUri: `/api/jobs/${id}`,
      cancelUri: `/api/jobs/${id}/cancel`,
    });
    // Durable's management URLs carry the extension's system key: never in an answer of this API.
    expect(JSON.stringify(response)).not.toMatch(/code=|runtime\/webhooks|statusQueryGetUri/);
    await engine.idle();

    const cancel = await handlers.cancelJob(
      request('POST', `jobs/${id}/cancel`, undefined, { id }),
      engineWorkflowClient(engine),
    );
    expect(cancel).toMatchObject({
      status: 202,
      headers: { location: `/api/jobs/${id}` },
      jsonBody: { id, status: 'cancelling', statusUri: `/api/jobs/${id}` },
    });
    expect((await engine.whenDone(id)).output).toEqual({ jobId: id, status: 'cancelled', runs: 0 });
    await expect(
      handlers.cancelJob(
        request('POST', `jobs/${id}/cancel`, undefined, { id }),
        engineWorkflowClient(engine),
      ),
    ).rejects.toMatchObject({ code: 'invalid-transition' });
  });

  it('keeps which device failed and why, bounded by Jobs__MaxDeviceResults, paged and filtered by status', async () => {
    const engine = engineFromRegistrations(registrations);
    const id = await createJob(engine, {
      type: 'deviceMethod',
      target: { deviceIds: ['job-dev-1', 'job-dev-2', 'job-dev-3'] },
      method: { name: 'reboot', payload: { delaySeconds: 5 } },
    });
    await engine.whenDone(id);
    expect((await getJob(engine, id)).runs[0]).toMatchObject({
      statistics: { deviceCount: 3, failedCount: 3 },
      deviceResults: { kept: 2, dropped: 1 },
    });
    type Page = {
      run?: number;
      deviceResults?: unknown;
      items: {
        deviceId: string;
        status: string;
        error?: { code: string };
        methodResponse?: { status: number };
      }[];
      continuationToken?: string;
    };
    const devices = async (query: string) => {
      const response = (await handlers.listJobDevices(
        request('GET', `jobs/${id}/devices?${query}`, undefined, { id }),
      )) as ApiResponse & { jsonBody: Page };
      expect(response.status).toBe(200);
      expect(responseProblems('listJobDevices', 200, response.jsonBody)).toEqual([]);
      return response.jsonBody;
    };
    const first = await devices('top=1');
    expect(first).toMatchObject({ run: 1, deviceResults: { kept: 2, dropped: 1 } });
    expect(first.items).toHaveLength(1);
    expect(first.continuationToken).toEqual(expect.any(String));
    const second = await devices(
      `top=1&continuationToken=${encodeURIComponent(first.continuationToken ?? '')}`,
    );
    expect(second.items).toHaveLength(1);
    expect(second.continuationToken).toBeUndefined();
    const kept = [...first.items, ...second.items].map((d) => d.deviceId);
    expect(new Set(kept).size).toBe(2);
    expect(kept.every((d) => d.startsWith('job-dev-'))).toBe(true);

    const failed = await devices('status=failed');
    expect(failed.items).toHaveLength(2);
    for (const item of failed.items) {
      expect(item).toMatchObject({
        status: 'failed',
        error: { code: 'DeviceNotOnline' },
        methodResponse: { status: 404 },
      });
    }
    expect((await devices('status=succeeded')).items).toEqual([]);
    expect((await devices('run=7')).items).toEqual([]);
    await expect(
      handlers.listJobDevices(
        request('GET', `jobs/${id}/devices?continuationToken=eyJ4IjoxfQ`, undefined, { id }),
      ),
    ).rejects.toMatchObject({ code: 'validation-error' });
  });

  it('lists jobs newest first and answers 404 for an unknown job', async () => {
    const page = (await handlers.listJobs(request('GET', 'jobs'))) as {
      jsonBody: { items: ScheduledJobRecord[] };
    };
    expect(page.jsonBody.items.length).toBeGreaterThanOrEqual(4);
    const created = page.jsonBody.items.map((j) => j.createdAt);
    expect(created).toEqual([...created].sort().reverse());
    const engine = engineFromRegistrations(registrations);
    await expect(getJob(engine, 'job-00000000-0000-0000-0000-000000000000')).rejects.toMatchObject({
      code: 'job-not-found',
    });
  });

  it.each([
    [{ type: 'twinUpdate', target: { deviceIds: ['a'] } }, 'twinPatch'],
    [{ type: 'deviceMethod', target: { deviceIds: ['a'] }, twinPatch: { x: 1 } }, 'method'],
    [{ type: 'twinUpdate', target: { where: {} }, twinPatch: { x: 1 } }, 'target'],
    [{ type: 'twinUpdate', target: { where: { tags: { 'bad key': 1 } } }, twinPatch: { x: 1 } }, 'target'],
    [{ type: 'twinUpdate', target: { deviceIds: ['a'] }, twinPatch: { x: 1 }, repeat: 'PT10S' }, 'repeat'],
    [{ type: 'twinUpdate', target: { deviceIds: ['a'] }, twinPatch: { x: 1 }, repeat: 'often' }, 'repeat'],
    [{ type: 'twinUpdate', target: { deviceIds: ['a'] }, twinPatch: { 'a.b': 1 } }, 'desired.a.b'],
    [{ type: 'twinUpdate', target: { deviceIds: ['a'] }, twinPatch: {}, query: 'SELECT *' }, 'query'],
  ])('refuses an inconsistent job (%j) with 422 naming %s, and starts nothing', async (body, path) => {
    const engine = engineFromRegistrations(registrations);
    const error = (await handlers
      .createJob(request('POST', 'jobs', body), engineWorkflowClient(engine))
      .catch((e: unknown) => e)) as { code?: string; errors?: { path: string }[] };
    expect(error.code).toBe('unprocessable-request');
    expect(error.errors?.map((p) => p.path).join(' ')).toContain(path);
    expect(engine.list()).toEqual([]);
  });
});
