/** What an IoT Hub job does to each device it targets. */
export type JobType = 'twinUpdate' | 'deviceMethod';

/** A direct method call, as IoT Hub's `cloudToDeviceMethod` job parameter. */
export interface DirectMethodCall {
  name: string;
  payload?: unknown;
  /** How long IoT Hub waits for each device's answer, seconds (IoT Hub: 5–300). */
  responseTimeoutInSeconds: number;
  /** How long IoT Hub waits for a disconnected device to connect, seconds (IoT Hub: 0–300, default 0). */
  connectTimeoutInSeconds?: number;
}

/** Scalar values usable in twin tag filters. */
export type TagValue = string | number | boolean;

/**
 * Which devices one IoT Hub job targets, as validated data. IoT Hub adapters turn it into a query condition
 * with `buildQueryCondition` (never a client-supplied string); the local adapter evaluates it directly.
 */
export interface HubJobTarget {
  /** Only these devices (at most what fits in one query condition: see `splitDeviceIds`). */
  deviceIds?: readonly string[];
  status?: 'enabled' | 'disabled';
  /** Twin tags that must equal the given values (dotted paths allowed: `site.building`). */
  tags?: Readonly<Record<string, TagValue>>;
}

/** Everything needed to start one IoT Hub job. */
export interface HubJobRequest {
  /** Unique per job run; starting the same id twice must not start a second job (activities may run twice). */
  hubJobId: string;
  type: JobType;
  target: HubJobTarget;
  twinPatch?: Record<string, unknown>;
  method?: DirectMethodCall;
  /** Upper bound IoT Hub gives the job, seconds. */
  maxExecutionTimeInSeconds: number;
}

/** IoT Hub job statuses; `completed`, `failed` and `cancelled` are terminal. */
export type HubJobStatus =
  'queued' | 'scheduled' | 'running' | 'completed' | 'failed' | 'cancelled' | 'unknown';

export const TERMINAL_JOB_STATUSES: ReadonlySet<HubJobStatus> = new Set(['completed', 'failed', 'cancelled']);

/** Per-device counts of a job, as IoT Hub's `deviceJobStatistics`. */
export interface DeviceJobStatistics {
  deviceCount: number;
  succeededCount: number;
  failedCount: number;
  runningCount: number;
  pendingCount: number;
}

export interface HubJob {
  hubJobId: string;
  status: HubJobStatus;
  statistics: DeviceJobStatistics;
  failureReason?: string;
}

/** What one device's part of a job came to: IoT Hub's device job (`devices.jobs`), in this API's words. */
export interface DeviceJobResult {
  deviceId: string;
  /** `failed` also for a direct method the device answered outside 2xx, and for a device the job never reached. */
  status: 'succeeded' | 'failed';
  /** Why it failed, as IoT Hub (or the local runner) said: e.g. `DeviceNotOnline`, `NotRun`. */
  error?: { code: string; message: string };
  /** Direct-method jobs: the device's answer, its payload as JSON text cut to PAYLOAD_EXCERPT_CHARS. */
  methodResponse?: { status: number; payloadExcerpt?: string; payloadTruncated?: true };
  endedAt?: string;
}

/** Longest payload excerpt and error message kept per device, characters. */
export const PAYLOAD_EXCERPT_CHARS = 512;

/** Cuts a direct method's answer payload to an excerpt (JSON text); absent when there was none. */
export function payloadExcerpt(
  payload: unknown,
): Pick<NonNullable<DeviceJobResult['methodResponse']>, 'payloadExcerpt' | 'payloadTruncated'> {
  if (payload === undefined || payload === null) return {};
  let text: unknown;
  try {
    // Typed as string, but undefined for a value JSON has no text for.
    text = JSON.stringify(payload);
  } catch {
    return {};
  }
  if (typeof text !== 'string') return {};
  return text.length > PAYLOAD_EXCERPT_CHARS
    ? { payloadExcerpt: text.slice(0, PAYLOAD_EXCERPT_CHARS), payloadTruncated: true }
    : { payloadExcerpt: text };
}

/**
 * Runs twin-update and direct-method jobs over many devices: IoT Hub's job service, or the local adapter of
 * the embedded run. Errors: TooManyJobsError (IoT Hub allows 1 active job on S1), ThrottledError,
 * UnprocessableRequestError (IoT Hub refused the job).
 */
export interface HubJobRunner {
  /** Starts the job now; when a job with this id already exists, returns it instead. */
  start(request: HubJobRequest): Promise<HubJob>;
  /** The job, or undefined when IoT Hub does not know it. */
  get(hubJobId: string): Promise<HubJob | undefined>;
  /** Asks IoT Hub to cancel the job; a job already terminal is left as it is. */
  cancel(hubJobId: string): Promise<void>;
  /** Per-device outcomes of a job that ended: at most `max`, in the order the service lists them. */
  deviceResults(hubJobId: string, max: number): Promise<DeviceJobResult[]>;
}

/** A direct method answer from one device; status 404 means the device is not online (as IoT Hub answers). */
export interface MethodResult {
  status: number;
  payload?: unknown;
}

/** Delivers direct methods to devices connected to the local runtime (the embedded run has no IoT Hub). */
export interface DeviceMethodInvoker {
  invoke(deviceId: string, method: DirectMethodCall): Promise<MethodResult>;
}

/** Where a job stands, as the API shows it. */
export type ScheduledJobStatus = 'scheduled' | 'waiting' | 'running' | 'completed' | 'failed' | 'cancelled';

/** One run of a job (a repeating job has one per occurrence; a large target one IoT Hub job per batch). */
export interface ScheduledJobRun {
  run: number;
  startedAt: string;
  endedAt?: string;
  status: ScheduledJobStatus;
  hubJobIds: string[];
  statistics: DeviceJobStatistics;
  failureReason?: string;
  /** Per-device outcomes kept for GET /jobs/{id}/devices, and those not kept (beyond Jobs__MaxDeviceResults). */
  deviceResults?: { kept: number; dropped: number };
}

/** A job as stored: its validated request, where it stands, and its recent runs. */
export interface ScheduledJobRecord {
  id: string;
  request: unknown;
  status: ScheduledJobStatus;
  createdAt: string;
  updatedAt: string;
  nextRunAt?: string;
  /** Most recent runs, newest last (at most 20 are kept). */
  runs: ScheduledJobRun[];
  /**
   * When a cancel was asked for (ISO 8601). The cancel event alone can be lost: continue-as-new drops events
   * raised while the last episode of a run is being processed; each run checks this at its start.
   */
  cancelRequestedAt?: string;
}

/** Job records (Cosmos DB). Errors: JobNotFoundError. */
export interface ScheduledJobStore {
  create(record: ScheduledJobRecord): Promise<void>;
  get(id: string): Promise<ScheduledJobRecord | undefined>;
  /** Newest first. */
  list(query: {
    top: number;
    continuationToken?: string;
  }): Promise<{ items: ScheduledJobRecord[]; continuationToken?: string }>;
  /** Applies `change` to the stored record (re-reading on a concurrent write) and returns the result. */
  update(id: string, change: (record: ScheduledJobRecord) => ScheduledJobRecord): Promise<ScheduledJobRecord>;
}

/** Tells people a job run ended (Slack, or the log). Never throws. */
export interface JobNotifier {
  runEnded(jobId: string, run: ScheduledJobRun): Promise<void>;
}

/**
 * Per-device outcomes of each job run, kept durably and bounded (Jobs__MaxDeviceResults per run), read in pages
 * in the order they were saved.
 */
export interface JobDeviceResultStore {
  /** Saves one batch of one run; saving the same batch again replaces it (activities run at least once). */
  save(jobId: string, run: number, batch: number, results: readonly DeviceJobResult[]): Promise<void>;
  /** Removes one run's outcomes (a run that no longer is among the job's kept runs). */
  forget(jobId: string, run: number): Promise<void>;
  /** A page of one run's outcomes. Errors: ValidationError for a continuation token this store did not issue. */
  page(
    jobId: string,
    run: number,
    query: { top: number; status?: DeviceJobResult['status']; continuationToken?: string },
  ): Promise<{ items: DeviceJobResult[]; continuationToken?: string }>;
}
