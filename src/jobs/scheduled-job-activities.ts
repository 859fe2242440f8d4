/**
 * The activities of the scheduled-job workflow (src/jobs/scheduled-job-workflow.ts has the orchestrator): record
 * keeping, target resolution, IoT Hub job calls and notifications; each idempotent, as activities run at least once.
 */
import type { DeviceCatalog } from '../provisioning/catalog.js';
import { TooManyJobsError, UnprocessableRequestError } from '../shared/errors.js';
import { MAX_JOB_DEVICE_IDS, type JobRequest } from './job-spec.js';
import type {
  HubJobRunner,
  HubJobTarget,
  JobDeviceResultStore,
  JobNotifier,
  ScheduledJobRecord,
  ScheduledJobRun,
  ScheduledJobStatus,
  ScheduledJobStore,
} from './ports.js';
import { splitDeviceIds } from './query-condition.js';
import { JobActivity, type StartReply } from './scheduled-job-workflow.js';

export interface ScheduledJobDeps {
  runner: HubJobRunner;
  catalog: DeviceCatalog;
  scheduledJobs: ScheduledJobStore;
  notifier: JobNotifier;
  deviceResults: JobDeviceResultStore;
  /** Per-device outcomes kept per run (Jobs__MaxDeviceResults). */
  maxDeviceResults: number;
  now?: () => Date;
}

/** Runs kept on a job record. */
const KEPT_RUNS = 20;

/**
 * The devices of a job target, as IoT Hub job targets: one per batch that fits a query condition. Metadata lives
 * in the device catalog, not in IoT Hub, so a metadata filter is resolved to device ids here, at run time.
 */
async function resolveTarget(catalog: DeviceCatalog, target: JobRequest['target']): Promise<HubJobTarget[]> {
  if ('deviceIds' in target) return splitDeviceIds(target.deviceIds, {}).map((deviceIds) => ({ deviceIds }));
  const { status, metadata, tags } = target.where;
  const rest: HubJobTarget = { ...(status ? { status } : {}), ...(tags ? { tags } : {}) };
  if (!metadata) return [rest];
  const ids: string[] = [];
  let continuationToken: string | undefined;
  do {
    const page = await catalog.query({
      metadata,
      ...(status ? { status } : {}),
      top: 1000,
      ...(continuationToken ? { continuationToken } : {}),
    });
    for (const d of page.items) ids.push(d.id);
    continuationToken = page.continuationToken;
    if (ids.length > MAX_JOB_DEVICE_IDS) {
      throw new UnprocessableRequestError(
        `The metadata filter matches more than ${MAX_JOB_DEVICE_IDS} devices; narrow it or use twin tags.`,
        [{ path: 'target.where.metadata', message: 'matches too many devices' }],
      );
    }
  } while (continuationToken);
  return splitDeviceIds(ids, rest).map((deviceIds) => ({ ...rest, deviceIds }));
}

/** Activity handlers of scheduled jobs; each is idempotent. */
export function makeScheduledJobActivities(deps: ScheduledJobDeps) {
  return {
    [JobActivity.resolveTarget]: (input: { target: JobRequest['target'] }) =>
      resolveTarget(deps.catalog, input.target),

    [JobActivity.startHubJob]: async (input: Parameters<HubJobRunner['start']>[0]): Promise<StartReply> => {
      try {
        return { started: true, job: await deps.runner.start(input) };
      } catch (error) {
        if (error instanceof TooManyJobsError) return { started: false, tooManyJobs: true };
        throw error;
      }
    },

    [JobActivity.getHubJob]: async (input: { hubJobId: string }) =>
      (await deps.runner.get(input.hubJobId)) ?? null,

    [JobActivity.cancelHubJob]: async (input: { hubJobId: string }) => {
      await deps.runner.cancel(input.hubJobId);
      return { cancelled: true };
    },

    [JobActivity.record]: async (input: {
      jobId: string;
      status: ScheduledJobStatus;
      run?: ScheduledJobRun;
      nextRunAt?: string;
    }) => {
      const updated = await deps.scheduledJobs.update(input.jobId, (record): ScheduledJobRecord => {
        const runs = input.run
          ? [...record.runs.filter((r) => r.run !== input.run?.run), input.run]
          : record.runs;
        const { nextRunAt: _previous, ...rest } = record;
        return {
          ...rest,
          status: input.status,
          updatedAt: (deps.now?.() ?? new Date()).toISOString(),
          runs: runs.slice(-KEPT_RUNS),
          ...(input.nextRunAt ? { nextRunAt: input.nextRunAt } : {}),
        };
      });
      return { status: updated.status, cancelRequested: updated.cancelRequestedAt !== undefined };
    },

    /** Copies one ended IoT Hub job's per-device outcomes to the store, within what is left of the run's cap. */
    [JobActivity.saveDeviceResults]: async (input: {
      jobId: string;
      run: number;
      batch: number;
      hubJobId: string;
      keptBefore: number;
    }) => {
      // A repeating job keeps the outcomes of the runs its record keeps: the first batch of a run drops the oldest.
      if (input.batch === 0 && input.run > KEPT_RUNS) {
        await deps.deviceResults.forget(input.jobId, input.run - KEPT_RUNS);
      }
      const room = deps.maxDeviceResults - input.keptBefore;
      if (room <= 0) return { kept: 0 };
      const results = await deps.runner.deviceResults(input.hubJobId, room);
      await deps.deviceResults.save(input.jobId, input.run, input.batch, results);
      return { kept: results.length };
    },

    [JobActivity.notify]: async (input: { jobId: string; run: ScheduledJobRun }) => {
      await deps.notifier.runEnded(input.jobId, input.run);
      return { notified: true };
    },
  };
}
