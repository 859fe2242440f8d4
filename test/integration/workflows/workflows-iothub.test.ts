/**
 * The IoT Hub path of the workflows: the entry point configured for IoT Hub (IdentityStore=iothub), the real
 * azure-iothub SDK (Registry, JobClient) talking to the wire-level IoT Hub fake, and the orchestrations run
 * through durable-functions' replay engine: a job start refused with 429 (one active job, as on S1) that
 * waits on a durable timer and succeeds, the monitor loop, cancellation of a running IoT Hub job, and a
 * throttled bulk chunk that waits and retries.
 */
import { HttpRequest } from '@azure/functions';
import iothub from 'azure-iothub';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import { createAdapters, type Adapters } from '../../../src/infra/adapters.js';
import { IotHubJobRunner } from '../../../src/infra/iothub/iothub-job-runner.js';
import { makeJobHandlers } from '../../../src/jobs/http-handlers.js';
import type { ScheduledJobRecord } from '../../../src/jobs/ports.js';
import { makeWorkflowHandlers } from '../../../src/provisioning/workflow-http-handlers.js';
import type { ApiResponse } from '../../../src/shared/api-request.js';
import { EventType, type DurableEngine } from '../../../tools/local-runtime/durable-engine.js';
import { engineWorkflowClient } from '../../../tools/local-runtime/engine-workflow-client.js';
import { routeHostToLoopback, startFakeIotHub, type FakeIotHub } from '../../fixtures/fake-iothub.js';
import { engineFromRegistrations, nonDeterministicEpisodes, orchestratorOf } from '../../support/durable.js';
import { loadEntryPoint, type Registration } from '../../support/entry-point.js';
import { testSettings } from '../../support/local-env.js';

const { JobClient, Registry } = iothub;

let hub: FakeIotHub;
let restore: () => void;
let registrations: Registration[];
let adapters: Adapters;
let jobHandlers: ReturnType<typeof makeJobHandlers>;

beforeAll(async () => {
  hub = await startFakeIotHub('wfhub.azure-devices.net', { maxConcurrentJobs: 1 });
  restore = routeHostToLoopback(hub.hostName, hub.port);
  const settings = testSettings({
    IdentityStore: 'iothub',
    IotHubRegistryConnectionString: hub.connectionString,
    IotHubHostName: hub.hostName,
    Jobs__PollIntervalSeconds: '10',
  });
  registrations = await loadEntryPoint(settings);
  adapters = createAdapters(loadConfig(settings));
  jobHandlers = makeJobHandlers({
    scheduledJobs: adapters.scheduledJobs,
    deviceResults: adapters.jobDeviceResults,
    pollIntervalMs: 10_000,
  });
  for (const id of ['hub-dev-1', 'hub-dev-2']) hub.addDevice(id);
});
afterAll(async () => {
  restore();
  await hub.close();
});

const request = (method: string, path: string, body?: unknown, params: Record<string, string> = {}) =>
  new HttpRequest({
    url: `http://localhost/api/${path}`,
    method,
    params,
    headers: { 'content-type': 'application/json' },
    ...(body === undefined
      ? {}
      : { body: { string: typeof body === 'string' ? body : JSON.stringify(body) } }),
  });

async function createJob(engine: DurableEngine, body: unknown): Promise<string> {
  const response = (await jobHandlers.createJob(
    request('POST', 'jobs', body),
    engineWorkflowClient(engine),
  )) as ApiResponse & {
    jsonBody: ScheduledJobRecord;
  };
  return response.jsonBody.id;
}

/** The bulk starter over this file's adapters, paced for S3 so a wave holds every chunk. */
const bulkHandlers = () =>
  makeWorkflowHandlers({
    identities: adapters.identities,
    work: adapters.work,
    results: adapters.results,
    keysCipher: adapters.keysCipher,
    hooks: [],
    registryOpsPerMinute: 5000,
    maxMetadataBytes: 8192,
  });

const scheduledActivities = (engine: DurableEngine, instanceId: string, name: string) =>
  engine
    .executions(instanceId)
    .flatMap((e) => e.history)
    .filter((event) => event.EventType === EventType.TaskScheduled && event.Name === name).length;

describe('scheduled jobs against IoT Hub (wire-level fake, real JobClient)', () => {
  it('waits on a durable timer while IoT Hub has too many active jobs, then starts and monitors the job to the end', async () => {
    // Another job holds S1's only slot.
    const blocker = new IotHubJobRunner(
      JobClient.fromConnectionString(hub.connectionString),
      Registry.fromConnectionString(hub.connectionString),
    );
    await blocker.start({
      hubJobId: 'someone-elses-job',
      type: 'twinUpdate',
      target: { deviceIds: ['hub-dev-2'] },
      twinPatch: { other: true },
      maxExecutionTimeInSeconds: 600,
    });
    const engine = engineFromRegistrations(registrations, 'manual');
    const id = await createJob(engine, {
      type: 'twinUpdate',
      target: { deviceIds: ['hub-dev-1', 'hub-dev-2'] },
      twinPatch: { sampling: { seconds: 30 } },
      notify: true,
    });
    await engine.idle();
    expect(engine.status(id)?.customStatus).toMatchObject({ step: 'waiting-for-job-slot' });
    expect((await adapters.scheduledJobs.get(id))?.status).toBe('waiting');
    expect(hub.jobs.has(`${id}-r1-b0`)).toBe(false);

    // The other job ends; a minute later the workflow asks again and gets the slot.
    await hub.advanceJobs();
    await hub.advanceJobs();
    engine.advance(60_000);
    await engine.idle();
    expect(hub.jobs.get(`${id}-r1-b0`)?.status).toBe('queued');
    expect(engine.status(id)?.customStatus).toMatchObject({ step: 'running', hubJobStatus: 'queued' });

    // Monitor loop: one poll per interval until IoT Hub reports a terminal status.
    for (const expected of ['running', 'completed']) {
      await hub.advanceJobs();
      engine.advance(10_000);
      await engine.idle();
      if (expected === 'running')
        expect(engine.status(id)?.customStatus).toMatchObject({ hubJobStatus: 'running' });
    }
    const done = await engine.whenDone(id);
    expect(done.runtimeStatus).toBe('Completed');
    expect(scheduledActivities(engine, id, 'jobStartHubJob')).toBe(2);
    // The start reply said queued; then one poll saw running and the next completed.
    expect(scheduledActivities(engine, id, 'jobGetHubJob')).toBe(2);
    const record = await adapters.scheduledJobs.get(id);
    expect(record?.status).toBe('completed');
    expect(record?.runs[0]?.statistics).toMatchObject({ deviceCount: 2, succeededCount: 2, failedCount: 0 });
    expect(hub.devices.get('hub-dev-1')?.twin?.desired).toMatchObject({ sampling: { seconds: 30 } });
    expect(await nonDeterministicEpisodes(engine, id, orchestratorOf(registrations, 'scheduledJob'))).toEqual(
      [],
    );
  });

  it('cancels the running IoT Hub job when the job is deleted', async () => {
    const engine = engineFromRegistrations(registrations, 'manual');
    const id = await createJob(engine, {
      type: 'deviceMethod',
      target: { deviceIds: ['hub-dev-1'] },
      method: { name: 'reboot', responseTimeoutInSeconds: 30 },
    });
    await engine.idle();
    expect(hub.jobs.get(`${id}-r1-b0`)?.status).toBe('queued');
    const response = await jobHandlers.cancelJob(
      request('DELETE', `jobs/${id}`, undefined, { id }),
      engineWorkflowClient(engine),
    );
    expect(response.status).toBe(202);
    await engine.idle();
    const done = await engine.whenDone(id);
    expect(done.output).toMatchObject({ status: 'cancelled' });
    expect(hub.jobs.get(`${id}-r1-b0`)?.status).toBe('cancelled');
    expect((await adapters.scheduledJobs.get(id))?.status).toBe('cancelled');
    expect(scheduledActivities(engine, id, 'jobCancelHubJob')).toBe(1);
  });
});

describe('per-device outcomes of a method job on IoT Hub', () => {
  it('keeps which device failed and with what answer, read from devices.jobs when the IoT Hub job ends', async () => {
    hub.setMethodResponder((deviceId) =>
      deviceId === 'hub-dev-1'
        ? { status: 200, payload: { rebooted: true } }
        : { status: 500, payload: { reason: 'busy' } },
    );
    try {
      const engine = engineFromRegistrations(registrations, 'manual');
      const id = await createJob(engine, {
        type: 'deviceMethod',
        target: { deviceIds: ['hub-dev-1', 'hub-dev-2'] },
        method: { name: 'reboot', responseTimeoutInSeconds: 30 },
      });
      await engine.idle();
      for (let i = 0; i < 2; i++) {
        await hub.advanceJobs();
        engine.advance(10_000);
        await engine.idle();
      }
      expect((await engine.whenDone(id)).runtimeStatus).toBe('Completed');
      const record = await adapters.scheduledJobs.get(id);
      expect(record?.runs[0]).toMatchObject({
        statistics: { deviceCount: 2, succeededCount: 1, failedCount: 1 },
        deviceResults: { kept: 2, dropped: 0 },
      });
      const page = (await jobHandlers.listJobDevices(
        request('GET', `jobs/${id}/devices?status=failed`, undefined, { id }),
      )) as ApiResponse & { jsonBody: { items: unknown[] } };
      expect(page.jsonBody.items).toEqual([
        {
          deviceId: 'hub-dev-2',
          status: 'failed',
          methodResponse: { status: 500, payloadExcerpt: '{"reason":"busy"}' },
          endedAt: expect.any(String) as unknown,
        },
      ]);
      expect(
        await nonDeterministicEpisodes(engine, id, orchestratorOf(registrations, 'scheduledJob')),
      ).toEqual([]);
    } finally {
      hub.setMethodResponder(undefined);
    }
  });
});

describe('cancellation that arrives while an activity runs', () => {
  it('is not lost: the next wait sees it and the IoT Hub job is cancelled', async () => {
    const engine = engineFromRegistrations(registrations, 'manual');
    const id = await createJob(engine, {
      type: 'twinUpdate',
      target: { deviceIds: ['hub-dev-2'] },
      twinPatch: { late: true },
    });
    await engine.idle();
    expect(hub.jobs.get(`${id}-r1-b0`)?.status).toBe('queued');
    // The poll timer fires and getHubJob starts; the cancel arrives before it has answered.
    engine.advance(10_000);
    engine.raiseEvent(id, 'cancel', { at: 'during-poll' });
    await engine.idle();
    expect(hub.jobs.get(`${id}-r1-b0`)?.status).toBe('cancelled');
    engine.advance(10_000);
    const done = await engine.whenDone(id);
    expect(done.output).toMatchObject({ status: 'cancelled' });
    expect((await adapters.scheduledJobs.get(id))?.status).toBe('cancelled');
  });
});

describe('bulk provisioning against IoT Hub (wire-level fake, real Registry)', () => {
  it('completes the run when a chunk stays throttled, reporting the devices of that chunk as failed', async () => {
    const engine = engineFromRegistrations(registrations);
    const handlers = bulkHandlers();
    const body = JSON.stringify(Array.from({ length: 30 }, (_, i) => ({ id: `hub-stuck-${i}` })));
    // More 429s than the chunk waits for (20), then the salvage's look-ups find no identity.
    hub.throttleNext(21);
    const response = (await handlers.startBulkProvisioning(
      request('POST', 'provisioning/bulk', body),
      engineWorkflowClient(engine),
    )) as ApiResponse & { jsonBody: { id: string } };
    const done = await engine.whenDone(response.jsonBody.id);
    expect(done.runtimeStatus).toBe('Completed');
    expect(done.output).toMatchObject({ total: 30, created: 0, failed: 30 });
    const lines = ((await adapters.results.read(`${response.jsonBody.id}.jsonl`)) ?? '').trim().split('\n');
    expect(lines).toHaveLength(30);
    expect(JSON.parse(lines[0] ?? '{}')).toMatchObject({
      outcome: 'failed',
      error: expect.stringContaining('still throttled after 20 waits') as unknown,
    });
  });

  it('waits on a durable timer when IoT Hub throttles a chunk (429), then creates every device', async () => {
    const engine = engineFromRegistrations(registrations);
    const handlers = bulkHandlers();
    const body = JSON.stringify(Array.from({ length: 150 }, (_, i) => ({ id: `hub-bulk-${i}` })));
    const start = engine.now().getTime();
    const requestsBefore = hub.requests.length;
    hub.throttleNext(1);
    const response = (await handlers.startBulkProvisioning(
      request('POST', 'provisioning/bulk', body),
      engineWorkflowClient(engine),
    )) as ApiResponse & {
      jsonBody: { id: string };
    };
    const instanceId = response.jsonBody.id;
    const done = await engine.whenDone(instanceId);
    expect(done.output).toMatchObject({ total: 150, created: 150, failed: 0 });
    expect([...hub.devices.keys()].filter((id) => id.startsWith('hub-bulk-'))).toHaveLength(150);
    // One chunk was refused once and asked again after the 10 s back-off.
    const attempts = [0, 1].map((chunk) =>
      scheduledActivities(engine, `${instanceId}:chunk:${chunk}`, 'bulkProvisionCreateChunk'),
    );
    expect(attempts.sort()).toEqual([1, 2]);
    expect(engine.now().getTime() - start).toBe(10_000);
    const bulkCalls = hub.requests
      .slice(requestsBefore)
      .filter((r) => r.method === 'POST' && r.path === '/devices');
    expect(bulkCalls).toHaveLength(3);
    const chunk = orchestratorOf(registrations, 'bulkProvisionChunk');
    for (const c of [0, 1])
      expect(await nonDeterministicEpisodes(engine, `${instanceId}:chunk:${c}`, chunk)).toEqual([]);
  });
});
