/**
 * Scheduled twin-update and direct-method jobs (seed 001: twins, direct methods, jobs). The orchestration
 * waits (durable timer) until `startAt`, resolves the target into IoT Hub query conditions, starts one IoT
 * Hub job per batch — waiting and retrying while IoT Hub says too many jobs are active (S1 allows one) —
 * polls each job on a timer until it ends, records the outcome, optionally posts a notice, and with
 * `repeat` continues as new for the next occurrence. A `cancel` event stops it at any wait.
 */
import * as df from 'durable-functions';
import type { OrchestrationContext, Task } from 'durable-functions';
import type { DeviceRegistry } from '../provisioning/registry.js';
import { TooManyJobsError, UnprocessableRequestError } from '../shared/errors.js';
import type { JobRequest } from './job-spec.js';
import { MAX_JOB_DEVICE_IDS } from './job-spec.js';
import {
  TERMINAL_JOB_STATUSES,
  type DeviceJobStatistics,
  type HubJob,
  type HubJobTarget,
  type JobNotifier,
  type JobRecord,
  type JobRun,
  type JobRunner,
  type JobStatus,
  type JobStore,
} from './ports.js';
import { splitDeviceIds } from './query-condition.js';
import { nextRun, parseRepeat } from './schedule.js';

export const SCHEDULED_JOB = 'scheduledJob';
export const CANCEL_EVENT = 'cancel';

export const JobActivity = {
  resolveTarget: 'jobResolveTarget',
  startHubJob: 'jobStartHubJob',
  getHubJob: 'jobGetHubJob',
  cancelHubJob: 'jobCancelHubJob',
  record: 'jobRecord',
  notify: 'jobNotify',
} as const;

export interface ScheduledJobInput {
  jobId: string;
  request: JobRequest;
  /** 1 for the first occurrence; continue-as-new counts up. */
  run: number;
  /** When this occurrence may start (ISO 8601); absent means now. */
  notBefore?: string;
  /** How often a running IoT Hub job is polled, ms (fixed at start so replays agree). */
  pollIntervalMs: number;
}

/** How long to wait before asking again when IoT Hub has too many active jobs. */
const TOO_MANY_JOBS_WAIT_MS = 60_000;

const EMPTY_STATISTICS: DeviceJobStatistics = {
  deviceCount: 0,
  succeededCount: 0,
  failedCount: 0,
  runningCount: 0,
  pendingCount: 0,
};

function activityRetry(): df.RetryOptions {
  const options = new df.RetryOptions(5000, 5);
  options.backoffCoefficient = 2;
  options.maxRetryIntervalInMilliseconds = 60_000;
  return options;
}

const addStatistics = (a: DeviceJobStatistics, b: DeviceJobStatistics): DeviceJobStatistics => ({
  deviceCount: a.deviceCount + b.deviceCount,
  succeededCount: a.succeededCount + b.succeededCount,
  failedCount: a.failedCount + b.failedCount,
  runningCount: a.runningCount + b.runningCount,
  pendingCount: a.pendingCount + b.pendingCount,
});

type StartReply = { started: true; job: HubJob } | { started: false; tooManyJobs: true };

/** The orchestrator. Deterministic: time from `currentUtcDateTime`, ids from the input, no I/O. */
export function* scheduledJobOrchestrator(context: OrchestrationContext): Generator<Task, unknown, unknown> {
  const input = context.df.getInput<ScheduledJobInput>();
  const { jobId, request, run } = input;
  const now = () => context.df.currentUtcDateTime;
  const cancelled = { value: false };
  const waitingFor = { cancel: undefined as Task | undefined };

  /** Sleeps until `until`; true when a cancel event arrived first. */
  const sleep = function* (until: Date): Generator<Task, boolean, unknown> {
    if (until.getTime() <= now().getTime()) return false;
    const timer = context.df.createTimer(until);
    if (cancelled.value) {
      // Already cancelling: plain waits from here on.
      yield timer;
      return false;
    }
    waitingFor.cancel ??= context.df.waitForExternalEvent(CANCEL_EVENT);
    const winner = yield context.df.Task.any([timer, waitingFor.cancel]);
    if (winner === timer) return false;
    timer.cancel();
    cancelled.value = true;
    return true;
  };
  const record = (status: JobStatus, runInfo?: JobRun, nextRunAt?: string) =>
    context.df.callActivityWithRetry(JobActivity.record, activityRetry(), {
      jobId,
      status,
      run: runInfo,
      nextRunAt,
    });

  const runInfo: JobRun = {
    run,
    startedAt: now().toISOString(),
    status: 'running',
    hubJobIds: [],
    statistics: { ...EMPTY_STATISTICS },
  };

  // 1. Wait for the start time (first occurrence) or the next occurrence.
  const notBefore = input.notBefore ?? (run === 1 ? request.startAt : undefined);
  if (notBefore !== undefined) {
    context.df.setCustomStatus({ run, step: 'scheduled', startAt: notBefore });
    yield record('scheduled', undefined, notBefore);
    if (yield* sleep(new Date(notBefore))) {
      yield record('cancelled');
      return { jobId, status: 'cancelled', runs: run - 1 };
    }
  }
  runInfo.startedAt = now().toISOString();
  yield record('running', runInfo);

  // 2. The devices, as IoT Hub job targets (one job per batch that fits a query condition).
  let failureReason: string | undefined;
  let batches: HubJobTarget[] = [];
  try {
    batches = (yield context.df.callActivityWithRetry(JobActivity.resolveTarget, activityRetry(), {
      target: request.target,
    })) as HubJobTarget[];
  } catch (error) {
    failureReason = error instanceof Error ? error.message : String(error);
  }

  // 3. Start and monitor each IoT Hub job.
  for (const [index, target] of batches.entries()) {
    if (cancelled.value || failureReason !== undefined) break;
    const hubJobId = `${jobId}-r${run}-b${index}`;
    let job: HubJob | undefined;
    while (job === undefined) {
      context.df.setCustomStatus({ run, step: 'starting', batch: index + 1, batches: batches.length });
      let reply: StartReply;
      try {
        reply = (yield context.df.callActivityWithRetry(JobActivity.startHubJob, activityRetry(), {
          hubJobId,
          type: request.type,
          target,
          ...(request.twinPatch ? { twinPatch: request.twinPatch } : {}),
          ...(request.method ? { method: request.method } : {}),
          maxExecutionTimeInSeconds: request.maxExecutionTimeInSeconds,
        })) as StartReply;
      } catch (error) {
        failureReason = error instanceof Error ? error.message : String(error);
        break;
      }
      if (reply.started) {
        job = reply.job;
        break;
      }
      // IoT Hub runs a limited number of jobs at once (1 on S1): wait for a slot on a durable timer.
      context.df.setCustomStatus({
        run,
        step: 'waiting-for-job-slot',
        batch: index + 1,
        batches: batches.length,
      });
      yield record('waiting', runInfo);
      if (yield* sleep(new Date(now().getTime() + TOO_MANY_JOBS_WAIT_MS))) break;
    }
    if (!job) break;
    runInfo.hubJobIds.push(hubJobId);
    // Monitor until a terminal status.
    while (!TERMINAL_JOB_STATUSES.has(job.status)) {
      context.df.setCustomStatus({
        run,
        step: 'running',
        batch: index + 1,
        batches: batches.length,
        hubJobStatus: job.status,
        progress: job.statistics,
      });
      if (yield* sleep(new Date(now().getTime() + input.pollIntervalMs))) {
        yield context.df.callActivityWithRetry(JobActivity.cancelHubJob, activityRetry(), { hubJobId });
      }
      job = ((yield context.df.callActivityWithRetry(JobActivity.getHubJob, activityRetry(), {
        hubJobId,
      })) as HubJob | undefined) ?? {
        hubJobId,
        status: 'failed',
        statistics: { ...EMPTY_STATISTICS },
        failureReason: 'IoT Hub lost the job',
      };
    }
    runInfo.statistics = addStatistics(runInfo.statistics, job.statistics);
    if (job.status === 'failed') failureReason = job.failureReason ?? `IoT Hub job ${hubJobId} failed`;
    if (job.status === 'cancelled') cancelled.value = true;
  }

  // 4. Record the outcome of this run.
  runInfo.endedAt = now().toISOString();
  runInfo.status = cancelled.value ? 'cancelled' : failureReason !== undefined ? 'failed' : 'completed';
  if (failureReason !== undefined) runInfo.failureReason = failureReason;
  const repeat = request.repeat !== undefined && !cancelled.value ? parseRepeat(request.repeat) : undefined;
  const next = repeat ? nextRun(repeat, now()) : undefined;
  yield record(next ? 'scheduled' : runInfo.status, runInfo, next?.toISOString());
  if (request.notify) {
    yield context.df.callActivityWithRetry(JobActivity.notify, activityRetry(), { jobId, run: runInfo });
  }
  context.df.setCustomStatus({
    run,
    step: next ? 'scheduled' : runInfo.status,
    lastRun: runInfo,
    nextRunAt: next,
  });

  // 5. Repeat: a fresh history for the next occurrence, so an eternal job's history stays small.
  if (next) {
    context.df.continueAsNew({
      ...input,
      run: run + 1,
      notBefore: next.toISOString(),
    } satisfies ScheduledJobInput);
    return undefined;
  }
  return { jobId, status: runInfo.status, runs: run, lastRun: runInfo };
}

export interface ScheduledJobDeps {
  runner: JobRunner;
  registry: DeviceRegistry;
  jobs: JobStore;
  notifier: JobNotifier;
  now?: () => Date;
}

/** Runs kept on a job record. */
const KEPT_RUNS = 20;

/** Activity handlers of scheduled jobs; each is idempotent. */
export function makeScheduledJobActivities(deps: ScheduledJobDeps) {
  return {
    [JobActivity.resolveTarget]: async (input: { target: JobRequest['target'] }): Promise<HubJobTarget[]> => {
      const target = input.target;
      if ('deviceIds' in target)
        return splitDeviceIds(target.deviceIds, {}).map((deviceIds) => ({ deviceIds }));
      const { status, metadata, tags } = target.where;
      const rest: HubJobTarget = { ...(status ? { status } : {}), ...(tags ? { tags } : {}) };
      if (!metadata) return [rest];
      // Metadata lives in the registry, not in IoT Hub: resolve it to device ids here, at run time.
      const ids: string[] = [];
      let continuationToken: string | undefined;
      do {
        const page = await deps.registry.query({
          metadata,
          ...(status ? { status } : {}),
          top: 1000,
          ...(continuationToken ? { continuationToken } : {}),
        });
        ids.push(...page.items.map((d) => d.id));
        continuationToken = page.continuationToken;
        if (ids.length > MAX_JOB_DEVICE_IDS) {
          throw new UnprocessableRequestError(
            `The metadata filter matches more than ${MAX_JOB_DEVICE_IDS} devices; narrow it or use twin tags.`,
            [{ path: 'target.where.metadata', message: 'matches too many devices' }],
          );
        }
      } while (continuationToken);
      return splitDeviceIds(ids, rest).map((deviceIds) => ({ ...rest, deviceIds }));
    },

    [JobActivity.startHubJob]: async (input: Parameters<JobRunner['start']>[0]): Promise<StartReply> => {
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
      status: JobStatus;
      run?: JobRun;
      nextRunAt?: string;
    }) => {
      const updated = await deps.jobs.update(input.jobId, (record): JobRecord => {
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
      return { status: updated.status };
    },

    [JobActivity.notify]: async (input: { jobId: string; run: JobRun }) => {
      await deps.notifier.runEnded(input.jobId, input.run);
      return { notified: true };
    },
  };
}
