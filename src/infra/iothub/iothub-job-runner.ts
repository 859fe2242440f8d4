import type { JobClient, Registry } from 'azure-iothub';
import {
  PAYLOAD_EXCERPT_CHARS,
  TERMINAL_JOB_STATUSES,
  payloadExcerpt,
  type DeviceJobResult,
  type DeviceJobStatistics,
  type HubJob,
  type HubJobRequest,
  type HubJobStatus,
  type HubJobRunner,
} from '../../jobs/ports.js';
import { buildQueryCondition } from '../../jobs/query-condition.js';
import { UnprocessableRequestError } from '../../shared/errors.js';
import { isConflict, isNotFound, translateJobError } from './errors.js';

/** The parts of IoT Hub's JobResponse (REST api-version 2021-04-12) this adapter reads. */
interface SdkJob {
  status?: string;
  failureReason?: string;
  deviceJobStatistics?: Partial<DeviceJobStatistics>;
}

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

/** One device job as IoT Hub's query language returns it from `devices.jobs` (the fields read here). */
interface SdkDeviceJob {
  deviceId?: string;
  status?: string;
  endTimeUtc?: string;
  error?: { code?: string; description?: string } | null;
  outcome?: { deviceMethodResponse?: { status?: number; payload?: unknown } | null } | null;
}

/** Device jobs read per query page (IoT Hub's query API returns at most 1,000 items per page). */
const QUERY_PAGE_SIZE = 1000;

/**
 * HubJobRunner on IoT Hub's job service through the `azure-iothub` SDK (PUT/GET /jobs/v2/{id}, POST .../cancel);
 * per-device outcomes come from the registry's query API (`SELECT * FROM devices.jobs WHERE
 * devices.jobs.jobId = '…'`, POST /devices/query), which IoT Hub offers for twin and method jobs alike.
 */
export class IotHubJobRunner implements HubJobRunner {
  constructor(
    private readonly client: JobClient,
    private readonly registry: Registry,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async deviceResults(hubJobId: string, max: number): Promise<DeviceJobResult[]> {
    const results: DeviceJobResult[] = [];
    if (max <= 0) return results;
    const query = this.registry.createQuery(
      `SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '${hubJobId.replaceAll("'", "''")}'`,
      Math.min(QUERY_PAGE_SIZE, max),
    );
    do {
      let page: unknown;
      try {
        // The SDK's promise form of next() ignores the token it keeps: without one passed, it reads page 1 again.
        const token = query.continuationToken;
        page = (await (token ? query.next(token) : query.next())).result;
      } catch (error) {
        throw translateJobError(error);
      }
      for (const item of Array.isArray(page) ? (page as SdkDeviceJob[]) : []) {
        if (typeof item.deviceId !== 'string') continue;
        results.push(toDeviceResult(item.deviceId, item));
        if (results.length >= max) return results;
      }
    } while (query.hasMoreResults);
    return results;
  }

  async start(request: HubJobRequest): Promise<HubJob> {
    const condition = buildQueryCondition(request.target);
    try {
      const response = await this.schedule(request, condition);
      return toHubJob(request.hubJobId, response.jobStatus as SdkJob | undefined);
    } catch (error) {
      if (isConflict(error)) {
        // The job id exists: an earlier attempt of this start got through (activities run at least once).
        const existing = await this.get(request.hubJobId);
        if (existing) return existing;
      }
      throw translateJobError(error, 'start');
    }
  }

  async get(hubJobId: string): Promise<HubJob | undefined> {
    try {
      const response = await this.client.getJob(wireId(hubJobId));
      return toHubJob(hubJobId, response.jobStatus as SdkJob | undefined);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw translateJobError(error);
    }
  }

  async cancel(hubJobId: string): Promise<void> {
    try {
      await this.client.cancelJob(wireId(hubJobId));
    } catch (error) {
      if (isNotFound(error)) return;
      // IoT Hub does not document its answer to cancelling a finished job: a terminal job is fine as it is.
      const job = await this.get(hubJobId).catch(() => undefined);
      if (job && TERMINAL_JOB_STATUSES.has(job.status)) return;
      throw translateJobError(error);
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

/**
 * IoT Hub's verdict on one device: `completed` is success unless the device answered its method outside 2xx
 * (as the local runner counts it); `failed` keeps IoT Hub's error; a device the job never reached (it was
 * cancelled, or ended first) is failed with code `NotRun`.
 */
function toDeviceResult(deviceId: string, item: SdkDeviceJob): DeviceJobResult {
  const answer = item.outcome?.deviceMethodResponse;
  const methodResponse =
    answer && typeof answer.status === 'number'
      ? { methodResponse: { status: answer.status, ...payloadExcerpt(answer.payload) } }
      : {};
  const endedAt = item.endTimeUtc ? { endedAt: item.endTimeUtc } : {};
  if (item.status === 'completed') {
    const ok = !answer || typeof answer.status !== 'number' || (answer.status >= 200 && answer.status < 300);
    return { deviceId, status: ok ? 'succeeded' : 'failed', ...methodResponse, ...endedAt };
  }
  const error =
    item.status === 'failed'
      ? {
          code: item.error?.code ?? 'Failed',
          message: (item.error?.description ?? 'IoT Hub reported the device job failed.').slice(
            0,
            PAYLOAD_EXCERPT_CHARS,
          ),
        }
      : { code: 'NotRun', message: `The job ended with this device ${item.status ?? 'not reached'}.` };
  return { deviceId, status: 'failed', error, ...methodResponse, ...endedAt };
}

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
