/**
 * Scheduled twin-update and direct-method jobs (seed 001: twins, direct methods, jobs). The orchestration
 * waits (durable timer) until `startAt`, resolves the target into IoT Hub query conditions, starts one IoT
 * Hub job per batch — waiting and retrying while IoT Hub says too many jobs are active (S1 allows one) —
 * polls each job on a timer until it ends, records the outcome, optionally posts a notice, and with
 * `repeat` continues as new for the next occurrence. A `cancel` event stops it at any wait.
 */
import * as df from 'durable-functions';
import type { OrchestrationContext, Task } from 'durable-functions';
import type { JobRequest } from './job-spec.js';
import {
  TERMINAL_JOB_STATUSES,
  type DeviceJobStatistics,
  type HubJob,
  type HubJobTarget,
  type ScheduledJobRun,
  type ScheduledJobStatus,
} from './ports.js';
import { nextRun, parseRepeat } from './schedule.js';
import { failureMessage } from '../shared/workflows.js';

export const SCHEDULED_JOB = 'scheduledJob';
/**
 * The version of this orchestrator's code that new inputs carry (ADR 0006, "Versioning of the eternal
 * orchestration"). An execution behaves as the version in its input says, whatever code replays it; continue-as-new
 * writes the current version, so new behaviour starts at the next occurrence. 2: an occurrence already due starts
 * at once (no `scheduled` record, no zero-length wait).
 */
export const SCHEDULED_JOB_VERSION = 2;
export const CANCEL_EVENT = 'cancel';

export const JobActivity = {
  resolveTarget: 'jobResolveTarget',
  startHubJob: 'jobStartHubJob',
  getHubJob: 'jobGetHubJob',
  cancelHubJob: 'jobCancelHubJob',
  record: 'jobRecord',
  notify: 'jobNotify',
  saveDeviceResults: 'jobSaveDeviceResults',
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
  /** The code version that wrote this input (`SCHEDULED_JOB_VERSION`); absent in inputs of version 1. */
  version?: number;
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

export type StartReply = { started: true; job: HubJob } | { started: false; tooManyJobs: true };
/** What the record activity answers; `cancelRequested` is absent in histories recorded before it existed. */
export interface RecordReply {
  status: ScheduledJobStatus;
  cancelRequested?: boolean;
}

/** Polls that fail in a row before the run is given up (each already retried 5 times by the activity policy). */
const MAX_POLL_FAILURES = 5;
/** After this many polls, a long job is polled at most every 5 minutes (keeps one run's history small). */
const FAST_POLLS = 20;
const SLOW_POLL_MS = 300_000;
/** How long past `maxExecutionTimeInSeconds` a job may stay non-terminal before the run gives up on it. */
const DEADLINE_MARGIN_MS = 600_000;

/** What the steps of one orchestrator execution share: time, the cancel watch, the record activity. */
interface JobExecution {
  context: OrchestrationContext;
  input: ScheduledJobInput;
  now: () => Date;
  /** The cancel event's task: one for the whole execution (a race only notices completions while it waits). */
  cancelTask: Task;
  /** Read through a function: a wait may set it, which the compiler's narrowing would not see. */
  isCancelled: () => boolean;
  markCancelled: () => void;
  /** Waits until `until` (at once when past); true when this wait is where the cancel was noticed. */
  sleep: (until: Date) => Generator<Task, boolean, unknown>;
  record: (status: ScheduledJobStatus, runInfo?: ScheduledJobRun, nextRunAt?: string) => Task;
}

function jobExecution(context: OrchestrationContext, input: ScheduledJobInput): JobExecution {
  const now = () => context.df.currentUtcDateTime;
  // One task for the whole execution: a cancel that arrives while an activity runs completes it, and every
  // later wait sees that (a race only notices completions that happen while it waits).
  const cancelTask = context.df.waitForExternalEvent(CANCEL_EVENT);
  const cancelled = { value: false };
  const sleep = function* (until: Date): Generator<Task, boolean, unknown> {
    if (!cancelled.value && cancelTask.isCompleted) {
      cancelled.value = true;
      return true;
    }
    const timer = context.df.createTimer(until.getTime() > now().getTime() ? until : now());
    if (cancelled.value) {
      // Already cancelling: plain waits from here on.
      yield timer;
      return false;
    }
    const winner = yield context.df.Task.any([timer, cancelTask]);
    if (winner === timer) return false;
    timer.cancel();
    cancelled.value = true;
    return true;
  };
  const record = (status: ScheduledJobStatus, runInfo?: ScheduledJobRun, nextRunAt?: string) =>
    context.df.callActivityWithRetry(JobActivity.record, activityRetry(), {
      jobId: input.jobId,
      status,
      run: runInfo,
      nextRunAt,
    });
  return {
    context,
    input,
    now,
    cancelTask,
    isCancelled: () => cancelled.value,
    markCancelled: () => {
      cancelled.value = true;
    },
    sleep,
    record,
  };
}

/** Which batch of how many a step works on (for the custom status). */
interface BatchPosition {
  batch: number;
  batches: number;
}

/** Starts one IoT Hub job, waiting for a slot while IoT Hub has too many; undefined when cancelled first. */
function* startHubJob(
  x: JobExecution,
  runInfo: ScheduledJobRun,
  hubJobId: string,
  target: HubJobTarget,
  at: BatchPosition,
): Generator<Task, HubJob | undefined, unknown> {
  const { context, input } = x;
  const { request, run } = input;
  while (!x.isCancelled()) {
    context.df.setCustomStatus({ run, step: 'starting', ...at });
    const reply = (yield context.df.callActivityWithRetry(JobActivity.startHubJob, activityRetry(), {
      hubJobId,
      type: request.type,
      target,
      ...(request.twinPatch ? { twinPatch: request.twinPatch } : {}),
      ...(request.method ? { method: request.method } : {}),
      maxExecutionTimeInSeconds: request.maxExecutionTimeInSeconds,
    })) as StartReply;
    if (reply.started) return reply.job;
    // IoT Hub runs a limited number of jobs at once (1 on S1): wait for a slot on a durable timer.
    context.df.setCustomStatus({ run, step: 'waiting-for-job-slot', ...at });
    yield x.record('waiting', runInfo);
    yield* x.sleep(new Date(x.now().getTime() + TOO_MANY_JOBS_WAIT_MS));
  }
  return undefined;
}

/**
 * Polls a started IoT Hub job on durable timers until it ends; cancels it (once) when the run is cancelled or
 * the job is overdue. Returns the ended job and, when it was overdue, why the run failed.
 */
function* pollHubJob(
  x: JobExecution,
  started: HubJob,
  hubJobId: string,
  at: BatchPosition,
): Generator<Task, { job: HubJob; overdueReason?: string }, unknown> {
  const { context, input } = x;
  const { request, run } = input;
  let job = started;
  let overdueReason: string | undefined;
  const deadline = x.now().getTime() + request.maxExecutionTimeInSeconds * 1000 + DEADLINE_MARGIN_MS;
  let cancelSent = false;
  let pollFailures = 0;
  for (let poll = 1; !TERMINAL_JOB_STATUSES.has(job.status); poll++) {
    context.df.setCustomStatus({
      run,
      step: x.isCancelled() ? 'cancelling' : 'running',
      ...at,
      hubJobStatus: job.status,
      progress: job.statistics,
    });
    const interval = poll > FAST_POLLS ? Math.max(input.pollIntervalMs, SLOW_POLL_MS) : input.pollIntervalMs;
    yield* x.sleep(new Date(x.now().getTime() + interval));
    const overdue = x.now().getTime() > deadline;
    if ((x.isCancelled() || overdue) && !cancelSent) {
      cancelSent = true;
      if (overdue) overdueReason = `IoT Hub job ${hubJobId} did not end within maxExecutionTimeInSeconds`;
      yield context.df.callActivityWithRetry(JobActivity.cancelHubJob, activityRetry(), { hubJobId });
    }
    try {
      const polled = (yield context.df.callActivityWithRetry(JobActivity.getHubJob, activityRetry(), {
        hubJobId,
      })) as HubJob | null;
      pollFailures = 0;
      job = polled ?? { ...job, status: 'failed', failureReason: 'IoT Hub no longer knows the job' };
    } catch (error) {
      if (++pollFailures >= MAX_POLL_FAILURES) throw error;
    }
  }
  return overdueReason === undefined ? { job } : { job, overdueReason };
}

/** Keeps which device of an ended IoT Hub job failed and why (bounded per run), for GET /jobs/{id}/devices. */
function* keepDeviceResults(
  x: JobExecution,
  runInfo: ScheduledJobRun,
  batch: number,
  hubJobId: string,
  job: HubJob,
): Generator<Task, void, unknown> {
  const { jobId, run } = x.input;
  const before = runInfo.deviceResults ?? { kept: 0, dropped: 0 };
  let kept = 0;
  try {
    const saved = (yield x.context.df.callActivityWithRetry(JobActivity.saveDeviceResults, activityRetry(), {
      jobId,
      run,
      batch,
      hubJobId,
      keptBefore: before.kept,
    })) as { kept: number };
    kept = saved.kept;
  } catch {
    // The outcomes could not be kept even after retries: the run's counts stand; these count as dropped.
  }
  runInfo.deviceResults = {
    kept: before.kept + kept,
    dropped: before.dropped + Math.max(0, job.statistics.deviceCount - kept),
  };
}

/**
 * Resolves the target into batches and runs one IoT Hub job per batch, one at a time, adding each job's
 * statistics to `runInfo`. Returns why the run failed, if it did.
 */
function* runBatches(
  x: JobExecution,
  runInfo: ScheduledJobRun,
): Generator<Task, string | undefined, unknown> {
  const { context, input } = x;
  const { jobId, request, run } = input;
  let failureReason: string | undefined;
  try {
    // A cancel recorded on the job whose event was lost (dropped by continue-as-new) stops the run here.
    const recorded = (yield x.record('running', runInfo)) as RecordReply | undefined;
    if (recorded?.cancelRequested === true) x.markCancelled();
    if (x.isCancelled()) return undefined;

    // 2. The devices, as IoT Hub job targets (one job per batch that fits a query condition).
    const batches = (yield context.df.callActivityWithRetry(JobActivity.resolveTarget, activityRetry(), {
      target: request.target,
    })) as HubJobTarget[];

    // 3. Start and monitor each IoT Hub job, one at a time.
    for (const [index, target] of batches.entries()) {
      if (x.isCancelled() || (yield* x.sleep(x.now()))) break;
      const hubJobId = `${jobId}-r${run}-b${index}`;
      const at: BatchPosition = { batch: index + 1, batches: batches.length };
      const started = yield* startHubJob(x, runInfo, hubJobId, target, at);
      if (!started) break;
      runInfo.hubJobIds.push(hubJobId);
      const { job, overdueReason } = yield* pollHubJob(x, started, hubJobId, at);
      failureReason ??= overdueReason;
      yield* keepDeviceResults(x, runInfo, index, hubJobId, job);
      runInfo.statistics = addStatistics(runInfo.statistics, job.statistics);
      if (job.status === 'failed') failureReason ??= job.failureReason ?? `IoT Hub job ${hubJobId} failed`;
      if (job.status === 'cancelled') x.markCancelled();
      if (failureReason !== undefined) break;
    }
  } catch (error) {
    failureReason = failureMessage(error);
  }
  return failureReason;
}

/** Records the run's outcome (and the next occurrence) and posts the notice; a failure only shows in the status. */
function* recordOutcome(
  x: JobExecution,
  runInfo: ScheduledJobRun,
  next: Date | undefined,
): Generator<Task, void, unknown> {
  const { context, input } = x;
  const { jobId, request, run } = input;
  try {
    yield x.record(next ? 'scheduled' : runInfo.status, runInfo, next?.toISOString());
    if (request.notify) {
      yield context.df.callActivityWithRetry(JobActivity.notify, activityRetry(), { jobId, run: runInfo });
    }
  } catch (error) {
    // The record could not be written even after retries: say so in the status, and keep the schedule.
    context.df.setCustomStatus({
      run,
      step: 'record-failed',
      reason: failureMessage(error),
      lastRun: runInfo,
    });
  }
  context.df.setCustomStatus({
    run,
    step: next ? 'scheduled' : runInfo.status,
    lastRun: runInfo,
    nextRunAt: next,
  });
}

/** The orchestrator. Deterministic: time from `currentUtcDateTime`, ids from the input, no I/O. */
export function* scheduledJobOrchestrator(context: OrchestrationContext): Generator<Task, unknown, unknown> {
  const input = context.df.getInput<ScheduledJobInput>();
  const { jobId, request, run } = input;
  const x = jobExecution(context, input);

  // 1. Wait for the start time (first occurrence) or the next occurrence. From version 2 an occurrence already due
  // starts at once: the first record of the run still reads a cancel recorded on the job.
  const notBefore = input.notBefore ?? (run === 1 ? request.startAt : undefined);
  const due =
    (input.version ?? 1) >= 2 &&
    notBefore !== undefined &&
    new Date(notBefore).getTime() <= x.now().getTime();
  if (notBefore !== undefined && !due) {
    context.df.setCustomStatus({ run, step: 'scheduled', startAt: notBefore });
    const recorded = (yield x.record('scheduled', undefined, notBefore)) as RecordReply | undefined;
    // The job record keeps a cancel whose event continue-as-new dropped: checked at the start of each run.
    if (recorded?.cancelRequested === true || (yield* x.sleep(new Date(notBefore)))) {
      yield x.record('cancelled');
      return { jobId, status: 'cancelled', runs: run - 1 };
    }
  }
  const scheduledAt = notBefore ?? x.now().toISOString();
  const runInfo: ScheduledJobRun = {
    run,
    startedAt: x.now().toISOString(),
    status: 'running',
    hubJobIds: [],
    statistics: { ...EMPTY_STATISTICS },
  };
  // 2 and 3.
  const failureReason = yield* runBatches(x, runInfo);

  // 4. Record the outcome of this run; a cancel that arrived meanwhile stops the repeat.
  runInfo.endedAt = x.now().toISOString();
  runInfo.status = x.isCancelled() ? 'cancelled' : failureReason !== undefined ? 'failed' : 'completed';
  if (failureReason !== undefined) runInfo.failureReason = failureReason;
  if (!x.isCancelled()) yield* x.sleep(x.now());
  const repeat = request.repeat !== undefined && !x.isCancelled() ? parseRepeat(request.repeat) : undefined;
  const next = repeat ? nextRun(repeat, x.now(), new Date(scheduledAt)) : undefined;
  yield* recordOutcome(x, runInfo, next);

  // 5. Repeat: a fresh history for the next occurrence, so an eternal job's history stays small. A cancel that
  // arrived while the outcome was recorded or notified is checked last: the API already answered "cancelling",
  // so it wins over the next occurrence (continue-as-new would consume it).
  if (next && x.cancelTask.isCompleted) {
    try {
      yield x.record('cancelled');
    } catch (error) {
      context.df.setCustomStatus({ run, step: 'record-failed', reason: failureMessage(error) });
    }
    context.df.setCustomStatus({ run, step: 'cancelled', lastRun: runInfo });
    return { jobId, status: 'cancelled', runs: run, lastRun: runInfo };
  }
  if (next) {
    context.df.continueAsNew({
      ...input,
      run: run + 1,
      notBefore: next.toISOString(),
      version: SCHEDULED_JOB_VERSION,
    } satisfies ScheduledJobInput);
    return undefined;
  }
  return { jobId, status: runInfo.status, runs: run, lastRun: runInfo };
}
