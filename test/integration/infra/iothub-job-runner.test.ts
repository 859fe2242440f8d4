// azure-iothub is CommonJS without named exports that Node's ESM loader can see: take them from the default.
import iothub from 'azure-iothub';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { IotHubJobRunner } from '../../../src/infra/iothub/iothub-job-runner.js';
import { IotHubTwinStore } from '../../../src/infra/iothub/iothub-twin-store.js';
import type { HubJobRequest, HubJobTarget } from '../../../src/jobs/ports.js';
import { buildQueryCondition } from '../../../src/jobs/query-condition.js';
import { ThrottledError, TooManyJobsError } from '../../../src/shared/errors.js';
import { describeHubJobRunnerContract } from '../../contract/hub-job-runner-contract.js';
import {
  routeHostToLoopback,
  startFakeIotHub,
  type FakeIotHub,
  type FakeMethodCall,
} from '../../fixtures/fake-iothub.js';

const { JobClient, Registry } = iothub;

let hub: FakeIotHub;
let runner: IotHubJobRunner;
let twins: IotHubTwinStore;
let restore: () => void;

beforeAll(async () => {
  // One active job at a time, as on an S1 hub.
  hub = await startFakeIotHub('jobhub.azure-devices.net', { maxConcurrentJobs: 1 });
  restore = routeHostToLoopback(hub.hostName, hub.port);
  runner = new IotHubJobRunner(
    JobClient.fromConnectionString(hub.connectionString),
    Registry.fromConnectionString(hub.connectionString),
  );
  twins = new IotHubTwinStore(Registry.fromConnectionString(hub.connectionString));
});
// A test that fails half-way must not leave a job active, or every later start would get 429.
afterEach(() => {
  for (const job of hub.jobs.values()) {
    if (job.status === 'queued' || job.status === 'scheduled' || job.status === 'running')
      job.status = 'cancelled';
  }
});
afterAll(async () => {
  restore();
  await hub.close();
});

/** Lets the fake hub take every job from queued through running to completed, then reads the job. */
async function settle(hubJobId: string) {
  await hub.advanceJobs();
  await hub.advanceJobs();
  return runner.get(hubJobId);
}

describeHubJobRunnerContract('IotHubJobRunner on the real azure-iothub SDK against the IoT Hub fake', () => ({
  runner,
  addDevice: (deviceId, status) => {
    hub.addDevice(deviceId, status ? { status } : {});
    return Promise.resolve();
  },
  desired: async (deviceId) => (await twins.get(deviceId))?.desired,
  settle,
}));

let counter = 0;
const uniqueId = (label: string) => `${label}-${counter++}`;

const twinJob = (hubJobId: string, target: HubJobTarget): HubJobRequest => ({
  hubJobId,
  type: 'twinUpdate',
  target,
  twinPatch: { firmware: '2.1' },
  maxExecutionTimeInSeconds: 900,
});

describe('IotHubJobRunner on the wire', () => {
  it('sends the target as exactly the condition buildQueryCondition writes, and the twin patch with etag *', async () => {
    const north = uniqueId('north');
    const south = uniqueId('south');
    hub.addDevice(north, { tags: { site: 'north', floor: { level: 3 } } });
    hub.addDevice(south, { tags: { site: 'south', floor: { level: 3 } } });
    const target: HubJobTarget = {
      deviceIds: [north, south],
      status: 'enabled',
      tags: { site: 'north', 'floor.level': 3 },
    };
    const hubJobId = uniqueId('wire-job');

    await runner.start(twinJob(hubJobId, target));

    const sent = hub.jobs.get(hubJobId);
    expect(sent?.queryCondition).toBe(buildQueryCondition(target));
    expect(sent?.type).toBe('scheduleUpdateTwin');
    expect(sent?.updateTwin).toEqual({ etag: '*', properties: { desired: { firmware: '2.1' } } });
    expect(sent?.maxExecutionTimeInSeconds).toBe(900);
    expect(hub.requests.every((r) => r.authorized)).toBe(true);
    // The fake evaluates that condition: only the device with both tags matches.
    expect((await settle(hubJobId))?.statistics).toMatchObject({ deviceCount: 1, succeededCount: 1 });
    expect((await twins.get(north))?.desired).toEqual({ firmware: '2.1' });
    expect((await twins.get(south))?.desired).toEqual({});
  });

  it('reports queued, then running with pending devices, then completed', async () => {
    const device = uniqueId('steps');
    hub.addDevice(device);
    const hubJobId = uniqueId('steps-job');

    const started = await runner.start(twinJob(hubJobId, { deviceIds: [device] }));
    expect(started.status).toBe('queued');
    expect((await runner.get(hubJobId))?.status).toBe('queued');
    await hub.advanceJobs();
    expect(await runner.get(hubJobId)).toMatchObject({
      status: 'running',
      statistics: { deviceCount: 1, pendingCount: 1, succeededCount: 0 },
    });
    await hub.advanceJobs();
    expect((await runner.get(hubJobId))?.status).toBe('completed');
  });

  it('refuses a second concurrent job with TooManyJobsError, and starts it once the first is cancelled', async () => {
    const device = uniqueId('busy');
    hub.addDevice(device);
    const first = uniqueId('first-job');
    const second = uniqueId('second-job');
    await runner.start(twinJob(first, { deviceIds: [device] }));

    await expect(runner.start(twinJob(second, { deviceIds: [device] }))).rejects.toBeInstanceOf(
      TooManyJobsError,
    );
    expect(hub.jobs.has(second)).toBe(false);

    await runner.cancel(first);
    expect((await runner.get(first))?.status).toBe('cancelled');
    await runner.start(twinJob(second, { deviceIds: [device] }));
    expect((await settle(second))?.status).toBe('completed');
    expect(hub.jobs.get(first)?.status).toBe('cancelled');
  });

  it('maps IoT Hub throttling (429 ThrottlingException) to ThrottledError', async () => {
    const device = uniqueId('throttled');
    hub.addDevice(device);
    const hubJobId = uniqueId('throttled-job');

    hub.throttleNext(1);
    const refused = runner.start(twinJob(hubJobId, { deviceIds: [device] }));
    await expect(refused).rejects.toBeInstanceOf(ThrottledError);
    await expect(refused).rejects.not.toBeInstanceOf(TooManyJobsError);
    expect(hub.jobs.has(hubJobId)).toBe(false);
    hub.throttleNext(1);
    await expect(runner.get(hubJobId)).rejects.toBeInstanceOf(ThrottledError);
  });

  it('passes the direct method to every device and counts 2xx answers as succeeded', async () => {
    const ok = uniqueId('answers');
    const broken = uniqueId('fails');
    hub.addDevice(ok);
    hub.addDevice(broken);
    const calls: { deviceId: string; call: FakeMethodCall }[] = [];
    hub.setMethodResponder((deviceId, call) => {
      calls.push({ deviceId, call });
      return { status: deviceId === ok ? 200 : 500, payload: {} };
    });
    const hubJobId = uniqueId('method-job');
    try {
      await runner.start({
        hubJobId,
        type: 'deviceMethod',
        target: { deviceIds: [ok, broken] },
        method: { name: 'reboot', payload: { delaySeconds: 5 }, responseTimeoutInSeconds: 20 },
        maxExecutionTimeInSeconds: 300,
      });
      expect((await settle(hubJobId))?.statistics).toMatchObject({
        deviceCount: 2,
        succeededCount: 1,
        failedCount: 1,
      });
    } finally {
      hub.setMethodResponder(undefined);
    }
    expect(calls.map((c) => c.deviceId).sort()).toEqual([ok, broken].sort());
    expect(calls[0]?.call).toEqual({
      methodName: 'reboot',
      payload: { delaySeconds: 5 },
      responseTimeoutInSeconds: 20,
    });
    expect(hub.jobs.get(hubJobId)?.type).toBe('scheduleDeviceMethod');
  });

  it("reads each device's outcome from devices.jobs: the method's status and a bounded payload excerpt", async () => {
    const ok = uniqueId('excerpt-ok');
    const broken = uniqueId('excerpt-500');
    hub.addDevice(ok);
    hub.addDevice(broken);
    hub.setMethodResponder((deviceId) =>
      deviceId === ok
        ? { status: 200, payload: { log: 'x'.repeat(5000) } }
        : { status: 500, payload: { reason: 'disk full' } },
    );
    const hubJobId = uniqueId('excerpt-job');
    try {
      await runner.start({
        hubJobId,
        type: 'deviceMethod',
        target: { deviceIds: [ok, broken] },
        method: { name: 'dumpLog', responseTimeoutInSeconds: 20 },
        maxExecutionTimeInSeconds: 300,
      });
      await settle(hubJobId);
    } finally {
      hub.setMethodResponder(undefined);
    }
    const results = await runner.deviceResults(hubJobId, 10);
    const byId = new Map(results.map((r) => [r.deviceId, r]));
    expect(byId.get(broken)).toMatchObject({
      status: 'failed',
      methodResponse: { status: 500, payloadExcerpt: '{"reason":"disk full"}' },
    });
    const answered = byId.get(ok);
    expect(answered).toMatchObject({
      status: 'succeeded',
      methodResponse: { status: 200, payloadTruncated: true },
    });
    expect(answered?.methodResponse?.payloadExcerpt).toHaveLength(512);
    expect(hub.requests.at(-1)).toMatchObject({ method: 'POST', path: '/devices/query', authorized: true });
  });

  it('reads device jobs across query pages (x-ms-continuation), and stops at max', async () => {
    const tag = uniqueId('fleet');
    const ids = Array.from({ length: 1050 }, (_, i) => `${tag}-${String(i)}`);
    for (const id of ids) hub.addDevice(id, { tags: { fleet: tag } });
    const hubJobId = uniqueId('many-job');
    await runner.start({
      hubJobId,
      type: 'twinUpdate',
      target: { tags: { fleet: tag } },
      twinPatch: { many: true },
      maxExecutionTimeInSeconds: 300,
    });
    await settle(hubJobId);
    const before = hub.requests.length;
    const all = await runner.deviceResults(hubJobId, 10_000);
    expect(all).toHaveLength(1050);
    expect(new Set(all.map((r) => r.deviceId)).size).toBe(1050);
    expect(all.every((r) => r.status === 'succeeded')).toBe(true);
    expect(hub.requests.slice(before).filter((r) => r.path === '/devices/query')).toHaveLength(2);
    expect(await runner.deviceResults(hubJobId, 3)).toHaveLength(3);
  });

  it("reads a status it does not know as 'unknown'", async () => {
    const device = uniqueId('odd');
    hub.addDevice(device);
    const hubJobId = uniqueId('odd-job');
    await runner.start(twinJob(hubJobId, { deviceIds: [device] }));
    const job = hub.jobs.get(hubJobId);
    if (!job) throw new Error('job not created');
    (job as { status: string }).status = 'paused';
    expect((await runner.get(hubJobId))?.status).toBe('unknown');
    job.status = 'cancelled';
  });

  it('names the job the same way on every call, also for ids that need escaping in a URL', async () => {
    const device = uniqueId('escaped');
    hub.addDevice(device);
    const hubJobId = uniqueId('job with spaces&more');
    await runner.start(twinJob(hubJobId, { deviceIds: [device] }));
    expect(hub.jobs.has(hubJobId)).toBe(true);
    expect((await runner.get(hubJobId))?.hubJobId).toBe(hubJobId);
    await runner.cancel(hubJobId);
    expect(hub.jobs.get(hubJobId)?.status).toBe('cancelled');
  });
});
