import { describe, expect, it } from 'vitest';
import type { HubJob, HubJobRequest, HubJobRunner } from '../../src/jobs/ports.js';

/** One adapter under test, with the backend around it. */
export interface JobRunnerHarness {
  runner: HubJobRunner;
  /** Creates a device that jobs can target. */
  addDevice(deviceId: string, status?: 'enabled' | 'disabled'): Promise<void>;
  /** The device's desired twin properties (without `$` members), or undefined when it has no twin. */
  desired(deviceId: string): Promise<Record<string, unknown> | undefined>;
  /** Lets the backend run the job to its end (IoT Hub works in the background), then reads it. */
  settle(hubJobId: string): Promise<HubJob | undefined>;
}

let counter = 0;
const uniqueId = (label: string) => `${label}-${Date.now().toString(36)}-${counter++}`;

const twinJob = (
  hubJobId: string,
  deviceIds: string[],
  twinPatch: Record<string, unknown>,
): HubJobRequest => ({
  hubJobId,
  type: 'twinUpdate',
  target: { deviceIds },
  twinPatch,
  maxExecutionTimeInSeconds: 600,
});

/**
 * The behaviour every HubJobRunner adapter must share: run against IoT Hub's job service (the wire-level fake)
 * and the local runner on Azurite and the local Cosmos DB server.
 */
export function describeHubJobRunnerContract(name: string, makeHarness: () => JobRunnerHarness): void {
  describe(`HubJobRunner contract: ${name}`, () => {
    it('runs a twin-update job on explicit devices: completed, one success per existing device', async () => {
      const h = makeHarness();
      const [a, b, missing, bystander] = ['a', 'b', 'missing', 'bystander'].map(uniqueId) as [
        string,
        string,
        string,
        string,
      ];
      for (const id of [a, b, bystander]) await h.addDevice(id);
      const hubJobId = uniqueId('twin-job');

      const started = await h.runner.start(twinJob(hubJobId, [a, b, missing], { interval: 30, mode: 'eco' }));
      expect(started.hubJobId).toBe(hubJobId);
      const job = await h.settle(hubJobId);

      expect(job).toEqual({
        hubJobId,
        status: 'completed',
        statistics: { deviceCount: 2, succeededCount: 2, failedCount: 0, runningCount: 0, pendingCount: 0 },
      });
      expect(await h.desired(a)).toEqual({ interval: 30, mode: 'eco' });
      expect(await h.desired(b)).toEqual({ interval: 30, mode: 'eco' });
      expect(await h.desired(bystander)).not.toHaveProperty('interval');
    });

    it('starts one job per hubJobId: a second start returns the first job and applies nothing new', async () => {
      const h = makeHarness();
      const device = uniqueId('twice');
      await h.addDevice(device);
      const hubJobId = uniqueId('twice-job');

      await h.runner.start(twinJob(hubJobId, [device], { version: 1 }));
      const again = await h.runner.start(twinJob(hubJobId, [device], { version: 2 }));
      expect(again.hubJobId).toBe(hubJobId);
      const job = await h.settle(hubJobId);

      expect(job?.status).toBe('completed');
      expect(job?.statistics).toMatchObject({ deviceCount: 1, succeededCount: 1 });
      expect(await h.desired(device)).toEqual({ version: 1 });
      // Starting a finished job's id again still starts nothing.
      expect(await h.runner.start(twinJob(hubJobId, [device], { version: 3 }))).toEqual(job);
      expect(await h.desired(device)).toEqual({ version: 1 });
    });

    it('narrows explicit devices by status', async () => {
      const h = makeHarness();
      const on = uniqueId('on');
      const off = uniqueId('off');
      await h.addDevice(on);
      await h.addDevice(off, 'disabled');
      const hubJobId = uniqueId('status-job');

      await h.runner.start({
        ...twinJob(hubJobId, [on, off], { quiet: true }),
        target: { deviceIds: [on, off], status: 'disabled' },
      });
      const job = await h.settle(hubJobId);

      expect(job?.statistics).toMatchObject({ deviceCount: 1, succeededCount: 1, failedCount: 0 });
      expect(await h.desired(off)).toEqual({ quiet: true });
      expect(await h.desired(on)).not.toHaveProperty('quiet');
    });

    it('is undefined for an unknown job', async () => {
      expect(await makeHarness().runner.get(uniqueId('no-such-job'))).toBeUndefined();
    });

    it('counts a direct-method job on devices that are not online as failed on every device', async () => {
      const h = makeHarness();
      const ids = [uniqueId('offline'), uniqueId('offline')];
      for (const id of ids) await h.addDevice(id);
      const hubJobId = uniqueId('method-job');

      const started = await h.runner.start({
        hubJobId,
        type: 'deviceMethod',
        target: { deviceIds: ids },
        method: { name: 'reboot', payload: { delaySeconds: 5 }, responseTimeoutInSeconds: 10 },
        maxExecutionTimeInSeconds: 600,
      });
      expect(started.hubJobId).toBe(hubJobId);
      const job = await h.settle(hubJobId);

      expect(job?.status).toBe('completed');
      expect(job?.statistics).toEqual({
        deviceCount: 2,
        succeededCount: 0,
        failedCount: 2,
        runningCount: 0,
        pendingCount: 0,
      });
    });

    it("keeps each device's outcome, as IoT Hub's device jobs: which device failed and why, at most max", async () => {
      const h = makeHarness();
      const ids = [uniqueId('outcome'), uniqueId('outcome')].sort();
      for (const id of ids) await h.addDevice(id);
      const methodJob = uniqueId('outcome-method');
      await h.runner.start({
        hubJobId: methodJob,
        type: 'deviceMethod',
        target: { deviceIds: ids },
        method: { name: 'reboot', responseTimeoutInSeconds: 10 },
        maxExecutionTimeInSeconds: 600,
      });
      await h.settle(methodJob);
      const results = await h.runner.deviceResults(methodJob, 10);
      expect(results.map((r) => r.deviceId).sort()).toEqual(ids);
      for (const result of results) {
        expect(result).toMatchObject({
          status: 'failed',
          error: { code: 'DeviceNotOnline', message: expect.any(String) as unknown },
        });
      }
      expect(await h.runner.deviceResults(methodJob, 1)).toHaveLength(1);

      const twinJobId = uniqueId('outcome-twin');
      await h.runner.start(twinJob(twinJobId, ids, { outcome: 1 }));
      await h.settle(twinJobId);
      const twins = await h.runner.deviceResults(twinJobId, 10);
      expect(twins.map((r) => [r.deviceId, r.status, r.error]).sort()).toEqual(
        ids.map((id) => [id, 'succeeded', undefined]),
      );
      expect(await h.runner.deviceResults(uniqueId('no-such-job'), 10)).toEqual([]);
    });

    it('leaves a terminal job as it is when asked to cancel it, and ignores unknown ids', async () => {
      const h = makeHarness();
      const device = uniqueId('done');
      await h.addDevice(device);
      const hubJobId = uniqueId('done-job');
      await h.runner.start(twinJob(hubJobId, [device], { done: true }));
      const finished = await h.settle(hubJobId);
      expect(finished?.status).toBe('completed');

      await h.runner.cancel(hubJobId);
      expect(await h.runner.get(hubJobId)).toEqual(finished);
      await expect(h.runner.cancel(uniqueId('no-such-job'))).resolves.toBeUndefined();
    });
  });
}
