import { TableClient } from '@azure/data-tables';
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import { createAdapters } from '../../../src/infra/adapters.js';
import { LocalHubJobRunner, OfflineDevices } from '../../../src/infra/local/local-hub-job-runner.js';
import type { DeviceMethodInvoker, HubJobRequest } from '../../../src/jobs/ports.js';
import { UnprocessableRequestError } from '../../../src/shared/errors.js';
import { describeHubJobRunnerContract } from '../../contract/hub-job-runner-contract.js';
import { testSettings } from '../../support/local-env.js';

const suffix = randomUUID().replaceAll('-', '').slice(0, 12);
const settings = testSettings({ IdentityTableName: `identities${suffix}` });
const adapters = createAdapters(loadConfig(settings));
const jobsTable = TableClient.fromConnectionString(settings.AzureWebJobsStorage ?? '', `jobs${suffix}`, {
  allowInsecureConnection: true,
});

// Some cases write records directly; the runner itself creates the table on first use too.
beforeAll(() => jobsTable.createTable());

const runnerWith = (methods: DeviceMethodInvoker) =>
  new LocalHubJobRunner(
    { twins: adapters.twins, catalog: adapters.catalog, methods, hubJobTable: jobsTable },
    { createTableIfMissing: true, concurrency: 4 },
  );
const runner = runnerWith(new OfflineDevices());

/** A device as provisioning leaves it: an identity (which carries the twin) and a catalog record. */
async function addDevice(deviceId: string, status: 'enabled' | 'disabled' = 'enabled'): Promise<void> {
  await adapters.identities.create(deviceId);
  if (status === 'disabled') await adapters.identities.setStatus(deviceId, 'disabled');
  const now = new Date().toISOString();
  await adapters.catalog.create({ id: deviceId, status, metadata: {}, createdAt: now, updatedAt: now });
}

describeHubJobRunnerContract('LocalHubJobRunner on Azurite and the local Cosmos DB server', () => ({
  runner,
  addDevice,
  desired: async (deviceId) => (await adapters.twins.get(deviceId))?.desired,
  settle: (hubJobId) => runner.get(hubJobId),
}));

/** A job record as the runner writes it when a job starts, for cases that begin from a stored state. */
const runningJobRecord = (
  hubJobId: string,
  type: string,
  startedAt: string,
  maxExecutionTimeInSeconds: number,
) => ({
  partitionKey: 'job',
  rowKey: hubJobId,
  hubJobId,
  type,
  status: 'running',
  deviceCount: 0,
  succeededCount: 0,
  failedCount: 0,
  runningCount: 0,
  pendingCount: 0,
  startedAt,
  maxExecutionTimeInSeconds,
});

let counter = 0;
const uniqueId = (label: string) => `${label}-${counter++}`;

const methodJob = (hubJobId: string, deviceIds: string[]): HubJobRequest => ({
  hubJobId,
  type: 'deviceMethod',
  target: { deviceIds },
  method: { name: 'blink', payload: { times: 3 }, responseTimeoutInSeconds: 10 },
  maxExecutionTimeInSeconds: 600,
});

describe('LocalHubJobRunner specifics', () => {
  it('matches no device for a tag target: the local twin store keeps no tags', async () => {
    const device = uniqueId('tagged');
    await addDevice(device);
    const hubJobId = uniqueId('tag-job');

    const job = await runner.start({
      hubJobId,
      type: 'twinUpdate',
      target: { deviceIds: [device], tags: { site: 'north' } },
      twinPatch: { mode: 'eco' },
      maxExecutionTimeInSeconds: 600,
    });

    expect(job.status).toBe('completed');
    expect(job.statistics.deviceCount).toBe(0);
    expect((await adapters.twins.get(device))?.desired).toEqual({});
  });

  it('targets every device with a status, across catalog pages', async () => {
    const devices = [uniqueId('parked'), uniqueId('parked'), uniqueId('parked')];
    for (const id of devices) await addDevice(id, 'disabled');
    const disabled: string[] = [];
    let continuationToken: string | undefined;
    do {
      const page = await adapters.catalog.query({
        status: 'disabled',
        top: 1000,
        ...(continuationToken ? { continuationToken } : {}),
      });
      disabled.push(...page.items.map((r) => r.id));
      continuationToken = page.continuationToken;
    } while (continuationToken);
    const hubJobId = uniqueId('status-job');

    const job = await runner.start({
      hubJobId,
      type: 'twinUpdate',
      target: { status: 'disabled' },
      twinPatch: { parked: true },
      maxExecutionTimeInSeconds: 600,
    });

    expect(job.statistics).toMatchObject({ deviceCount: disabled.length, succeededCount: disabled.length });
    for (const id of devices) expect((await adapters.twins.get(id))?.desired).toEqual({ parked: true });
  });

  it('counts a device whose twin cannot be patched as failed', async () => {
    const good = uniqueId('whole');
    const catalogOnly = uniqueId('no-identity');
    await addDevice(good);
    const now = new Date().toISOString();
    await adapters.catalog.create({
      id: catalogOnly,
      status: 'enabled',
      metadata: {},
      createdAt: now,
      updatedAt: now,
    });

    const job = await runner.start({
      hubJobId: uniqueId('partial-job'),
      type: 'twinUpdate',
      target: { deviceIds: [good, catalogOnly] },
      twinPatch: { a: 1 },
      maxExecutionTimeInSeconds: 600,
    });

    expect(job).toMatchObject({
      status: 'completed',
      statistics: { deviceCount: 2, succeededCount: 1, failedCount: 1 },
    });
  });

  it('counts 2xx method answers as succeeded, other answers and errors as failed', async () => {
    const [ok, refuses, throws] = [uniqueId('ok'), uniqueId('refuses'), uniqueId('throws')];
    for (const id of [ok, refuses, throws]) await addDevice(id);
    const calls: string[] = [];
    const devices: DeviceMethodInvoker = {
      invoke: (deviceId, method) => {
        calls.push(`${deviceId}:${method.name}:${JSON.stringify(method.payload)}`);
        if (deviceId === throws) return Promise.reject(new Error('connection lost'));
        return Promise.resolve({ status: deviceId === ok ? 204 : 501 });
      },
    };

    const job = await runnerWith(devices).start(methodJob(uniqueId('mixed-job'), [ok, refuses, throws]));

    expect(job.statistics).toMatchObject({ deviceCount: 3, succeededCount: 1, failedCount: 2 });
    expect(calls.sort()).toEqual([ok, refuses, throws].map((id) => `${id}:blink:{"times":3}`).sort());
  });

  it('runs a job once when the same hubJobId is started twice at the same time', async () => {
    const ids = [uniqueId('race'), uniqueId('race')];
    for (const id of ids) await addDevice(id);
    let calls = 0;
    const counting = runnerWith({
      invoke: () => {
        calls++;
        return Promise.resolve({ status: 200 });
      },
    });
    const request = methodJob(uniqueId('race-job'), ids);

    const [first, second] = await Promise.all([counting.start(request), counting.start(request)]);

    expect(calls).toBe(2);
    expect(first.hubJobId).toBe(request.hubJobId);
    expect(second.hubJobId).toBe(request.hubJobId);
    expect((await counting.get(request.hubJobId))?.statistics.succeededCount).toBe(2);
  });

  it('reports a job that a stopped runtime left running past its time limit as failed', async () => {
    const hubJobId = uniqueId('abandoned-job');
    await jobsTable.createEntity(
      runningJobRecord(hubJobId, 'twinUpdate', new Date(Date.now() - 120_000).toISOString(), 60),
    );

    const job = await runner.get(hubJobId);
    expect(job?.status).toBe('failed');
    expect(job?.failureReason).toMatch(/stopped/);
  });

  it('runs a job again that a stopped runtime left running within its time limit, when its start is retried after the restart', async () => {
    const device = uniqueId('resumed');
    await addDevice(device);
    const hubJobId = uniqueId('interrupted-job');
    // What a process stopped half-way through the job left: its claim, 'running', and no outcome.
    await jobsTable.createEntity(runningJobRecord(hubJobId, 'twinUpdate', new Date().toISOString(), 600));

    const job = await runner.start({
      hubJobId,
      type: 'twinUpdate',
      target: { deviceIds: [device] },
      twinPatch: { firmware: '2.0' },
      maxExecutionTimeInSeconds: 600,
    });

    expect(job).toMatchObject({ status: 'completed', statistics: { deviceCount: 1, succeededCount: 1 } });
    expect((await adapters.twins.get(device))?.desired).toMatchObject({ firmware: '2.0' });
    expect((await runner.get(hubJobId))?.status).toBe('completed');
  });

  it('two starts at once of a job a stopped runtime left running: it runs again once', async () => {
    const ids = [uniqueId('resumed-race'), uniqueId('resumed-race')];
    for (const id of ids) await addDevice(id);
    let calls = 0;
    const counting = runnerWith({
      invoke: () => {
        calls++;
        return Promise.resolve({ status: 200 });
      },
    });
    const request = methodJob(uniqueId('interrupted-race'), ids);
    await jobsTable.createEntity(
      runningJobRecord(request.hubJobId, 'deviceMethod', new Date().toISOString(), 600),
    );

    await Promise.all([counting.start(request), counting.start(request)]);

    expect(calls).toBe(2);
    expect(await counting.get(request.hubJobId)).toMatchObject({
      status: 'completed',
      statistics: { succeededCount: 2 },
    });
  });

  it('cancels a job that is still running', async () => {
    const hubJobId = uniqueId('stuck-job');
    await jobsTable.createEntity(runningJobRecord(hubJobId, 'deviceMethod', new Date().toISOString(), 600));

    await runner.cancel(hubJobId);
    expect((await runner.get(hubJobId))?.status).toBe('cancelled');
  });

  it('refuses an incomplete request before recording anything', async () => {
    const hubJobId = uniqueId('incomplete-job');
    await expect(
      runner.start({
        hubJobId,
        type: 'twinUpdate',
        target: { deviceIds: ['x'] },
        maxExecutionTimeInSeconds: 600,
      }),
    ).rejects.toBeInstanceOf(UnprocessableRequestError);
    await expect(
      runner.start({ ...methodJob(hubJobId, ['x']), target: { deviceIds: ["it's"] } }),
    ).rejects.toBeInstanceOf(UnprocessableRequestError);
    expect(await runner.get(hubJobId)).toBeUndefined();
  });

  it('answers direct methods as IoT Hub does for a device that is not connected', async () => {
    expect(await new OfflineDevices().invoke('any', { name: 'x', responseTimeoutInSeconds: 5 })).toEqual({
      status: 404,
      payload: { message: 'device not online' },
    });
  });
});
