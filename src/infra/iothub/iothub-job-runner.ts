import type { JobClient } from 'azure-iothub';
import {
  TERMINAL_JOB_STATUSES,
  type DeviceJobStatistics,
  type HubJob,
  type HubJobRequest,
  type HubJobStatus,
  type JobRunner,
} from '../../jobs/ports.js';
import { buildQueryCondition } from '../../jobs/query-condition.js';
import { ThrottledError, TooManyJobsError, UnprocessableRequestError } from '../../shared/errors.js';
import { iotHubErrorCode, iotHubRetryAfterSeconds, iotHubStatus } from './iothub-errors.js';

/** The parts of IoT Hub's JobResponse (REST api-version 2021-04-12) this adapter reads. */
interface SdkJob {
  status?: string;
  failureReason?: string;
  deviceJobStatistics?: Partial<DeviceJobStatistics>;
}

// 429004 ThrottlingMaxActiveJobCountExceeded (IoT Hub error codes); JobQuotaExceeded is the name the .NET
// service SDK gives the same condition.
const TOO_MANY_JOBS_CODES = new Set(['ThrottlingMaxActiveJobCountExceeded', 'JobQuotaExceeded']);
const TOO_MANY_JOBS_TEXT = /active jobs?|quota/i;

const STATUSES: ReadonlyMap<string, HubJobStatus> = new Map([
  ['queued', 'queued'],
  // The REST API names the waiting state 'enqueued' in places, 'queued' in others.
  ['enqueued', 'queued'],
  ['scheduled', 'scheduled'],
  ['running', 'running'],
  ['completed', 'completed'],
  ['failed', 'failed'],
  ['cancelled', 'cancelled'],
]);

/** JobRunner on IoT Hub's job service through the `azure-iothub` SDK (PUT/GET /jobs/v2/{id}, POST .../cancel). */
export class IotHubJobRunner implements JobRunner {
  constructor(
    private readonly client: JobClient,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async start(request: HubJobRequest): Promise<HubJob> {
    const condition = buildQueryCondition(request.target);
    try {
      const response = await this.schedule(request, condition);
      return toHubJob(request.hubJobId, response.jobStatus as SdkJob | undefined);
    } catch (error) {
      if (iotHubStatus(error) === 409) {
        // The job id exists: an earlier attempt of this start got through (activities run at least once).
        const existing = await this.get(request.hubJobId);
        if (existing) return existing;
      }
      throw translateStartError(error);
    }
  }

  async get(hubJobId: string): Promise<HubJob | undefined> {
    try {
      const response = await this.client.getJob(wireId(hubJobId));
      return toHubJob(hubJobId, response.jobStatus as SdkJob | undefined);
    } catch (error) {
      if (iotHubStatus(error) === 404) return undefined;
      throw translateError(error);
    }
  }

  async cancel(hubJobId: string): Promise<void> {
    try {
      await this.client.cancelJob(wireId(hubJobId));
    } catch (error) {
      if (iotHubStatus(error) === 404) return;
      // IoT Hub does not document its answer to cancelling a finished job: a terminal job is fine as it is.
      const job = await this.get(hubJobId).catch(() => undefined);
      if (job && TERMINAL_JOB_STATUSES.has(job.status)) return;
      throw translateError(error);
    }
  }

  private schedule(request: HubJobRequest, condition: string) {
    const { hubJobId, maxExecutionTimeInSeconds } = request;
    if (request.type === 'twinUpdate') {
      if (request.twinPatch === undefined) throw missing('twinPatch', 'required for a twinUpdate job');
      // IoT Hub applies a job's twin update unconditionally only with etag '*'.
      const patch = { etag: '*', properties: { desired: request.twinPatch } };
      return this.client.scheduleTwinUpdate(
        hubJobId,
        condition,
        patch,
        this.now(),
        maxExecutionTimeInSeconds,
      );
    }
    if (request.method === undefined) throw missing('method', 'required for a deviceMethod job');
    return this.client.scheduleDeviceMethod(
      hubJobId,
      condition,
      {
        methodName: request.method.name,
        payload: request.method.payload,
        responseTimeoutInSeconds: request.method.responseTimeoutInSeconds,
      },
      this.now(),
      maxExecutionTimeInSeconds,
    );
  }
}

// The SDK percent-encodes the id on PUT but not on GET or cancel: encode those here so all three name the
// same job.
const wireId = (hubJobId: string) => encodeURIComponent(hubJobId);

const missing = (path: string, message: string) =>
  new UnprocessableRequestError('The job request is incomplete.', [{ path, message }]);

function toHubJob(hubJobId: string, job: SdkJob | undefined): HubJob {
  const stats = job?.deviceJobStatistics ?? {};
  const result: HubJob = {
    hubJobId,
    status: STATUSES.get(job?.status ?? '') ?? 'unknown',
    statistics: {
      deviceCount: stats.deviceCount ?? 0,
      succeededCount: stats.succeededCount ?? 0,
      failedCount: stats.failedCount ?? 0,
      runningCount: stats.runningCount ?? 0,
      pendingCount: stats.pendingCount ?? 0,
    },
  };
  if (job?.failureReason) result.failureReason = job.failureReason;
  return result;
}

/** Job creation answers 429 both when throttled and when too many jobs are active (S1: 1 at a time). */
function translateStartError(error: unknown): unknown {
  if (iotHubStatus(error) === 429) {
    const code = iotHubErrorCode(error);
    // The message is read only when IoT Hub sent no error code: a throttling text may mention quotas too.
    const tooMany =
      code !== undefined
        ? TOO_MANY_JOBS_CODES.has(code)
        : TOO_MANY_JOBS_TEXT.test(error instanceof Error ? error.message : '');
    if (tooMany) return new TooManyJobsError('IoT Hub is already running as many jobs as this hub allows.');
  }
  return translateError(error);
}

function translateError(error: unknown): unknown {
  switch (iotHubStatus(error)) {
    case 400:
      return new UnprocessableRequestError('IoT Hub refused the job.', [
        { path: '(job)', message: error instanceof Error ? error.message : 'invalid request' },
      ]);
    case 429:
      return new ThrottledError('IoT Hub is throttling requests.', iotHubRetryAfterSeconds(error));
    default:
      return error;
  }
}
