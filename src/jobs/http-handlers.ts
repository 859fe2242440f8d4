import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import {
  parseRequest as parse,
  pathParam,
  queryParameters,
  readJson,
  type ApiRequest,
  type ApiResponse,
} from '../shared/api-request.js';
import { InvalidTransitionError, JobNotFoundError } from '../shared/errors.js';
import { isFinished, type WorkflowClient } from '../shared/workflows.js';
import { checkJobRequest, jobRequestSchema } from './job-spec.js';
import type { JobDeviceResultStore, ScheduledJobRecord, ScheduledJobStore } from './ports.js';
import {
  CANCEL_EVENT,
  SCHEDULED_JOB,
  SCHEDULED_JOB_VERSION,
  type ScheduledJobInput,
} from './scheduled-job-workflow.js';

export const listSchema = z.strictObject({
  top: z.coerce.number().int().min(1).max(100).default(50),
  continuationToken: z.string().min(1).optional(),
});

export const devicesSchema = z.strictObject({
  top: z.coerce.number().int().min(1).max(1000).default(100),
  status: z.enum(['succeeded', 'failed']).optional(),
  run: z.coerce.number().int().min(1).optional(),
  continuationToken: z.string().min(1).optional(),
});

/** Server-generated ids: safe as Cosmos ids, IoT Hub job ids and orchestration instance ids. */
export const JOB_ID = /^job-[0-9a-f-]{36}$/;

/** The job's status route of this API (also the Location of 202 answers). */
const statusUri = (id: string) => `/api/jobs/${id}`;

export interface JobHandlerDeps {
  scheduledJobs: ScheduledJobStore;
  /** Per-device outcomes of job runs. */
  deviceResults: JobDeviceResultStore;
  /** How often running IoT Hub jobs are polled, ms. */
  pollIntervalMs: number;
  /** Largest JSON body accepted, bytes (Http__MaxBodyBytes). */
  maxBodyBytes?: number;
  now?: () => Date;
}

/** HTTP API of scheduled twin-update and direct-method jobs. */
export function makeJobHandlers(deps: JobHandlerDeps) {
  const now = () => (deps.now?.() ?? new Date()).toISOString();
  const find = async (id: string): Promise<ScheduledJobRecord> => {
    const record = JOB_ID.test(id) ? await deps.scheduledJobs.get(id) : undefined;
    if (!record) throw new JobNotFoundError(id);
    return record;
  };

  return {
    /** POST /jobs: validates the job, stores it, and starts its orchestration (202 with the job). */
    createJob: async (request: ApiRequest, workflows: WorkflowClient): Promise<ApiResponse> => {
      const job = checkJobRequest(
        parse(jobRequestSchema, await readJson(request, false, { maxBytes: deps.maxBodyBytes })),
      );
      const id = `job-${randomUUID()}`;
      const at = now();
      const record: ScheduledJobRecord = {
        id,
        request: job,
        status: 'scheduled',
        createdAt: at,
        updatedAt: at,
        ...(job.startAt ? { nextRunAt: job.startAt } : {}),
        runs: [],
      };
      await deps.scheduledJobs.create(record);
      const input: ScheduledJobInput = {
        jobId: id,
        request: job,
        run: 1,
        pollIntervalMs: deps.pollIntervalMs,
        version: SCHEDULED_JOB_VERSION,
      };
      await workflows.start(SCHEDULED_JOB, id, input);
      // This API's own routes only: Durable's management URLs carry the extension's system key.
      return {
        status: 202,
        headers: { location: statusUri(id) },
        jsonBody: { ...record, statusUri: statusUri(id), cancelUri: `${statusUri(id)}/cancel` },
      };
    },

    /** GET /jobs/{id}: the job with its runs, and the orchestration's live progress. */
    getJob: async (request: ApiRequest, workflows: WorkflowClient): Promise<ApiResponse> => {
      const record = await find(pathParam(request, 'id'));
      const status = await workflows.status(record.id);
      return {
        status: 200,
        jsonBody: {
          ...record,
          ...(status
            ? { workflow: { runtimeStatus: status.runtimeStatus, progress: status.customStatus } }
            : {}),
        },
      };
    },

    ...jobListHandlers(deps, find),

    /** POST /jobs/{id}/cancel (and its alias DELETE /jobs/{id}): cancels the orchestration and the running IoT Hub job (202: it happens next). */
    cancelJob: async (request: ApiRequest, workflows: WorkflowClient): Promise<ApiResponse> => {
      const record = await find(pathParam(request, 'id'));
      const status = await workflows.status(record.id);
      if (!status || isFinished(status.runtimeStatus)) {
        throw new InvalidTransitionError(
          `Job '${record.id}' is ${record.status}; there is nothing to cancel.`,
        );
      }
      // Recorded first: the event is dropped when it arrives while a repeating job continues as new, and the
      // next run reads the record at its start.
      const requestedAt = now();
      await deps.scheduledJobs.update(record.id, (r) => ({ ...r, cancelRequestedAt: requestedAt }));
      try {
        await workflows.raiseEvent(record.id, CANCEL_EVENT, { requestedAt });
      } catch (error) {
        // The job ended between the status read and the event: there was nothing left to cancel (409, not 500).
        const after = await workflows.status(record.id);
        if (!after || isFinished(after.runtimeStatus)) {
          const ended = (await find(record.id)).status;
          throw new InvalidTransitionError(`Job '${record.id}' is ${ended}; there is nothing to cancel.`);
        }
        throw error;
      }
      return {
        status: 202,
        headers: { location: statusUri(record.id) },
        jsonBody: { id: record.id, status: 'cancelling', statusUri: statusUri(record.id) },
      };
    },
  };
}

/** The paged reads: jobs, and one run's per-device outcomes. */
function jobListHandlers(deps: JobHandlerDeps, find: (id: string) => Promise<ScheduledJobRecord>) {
  return {
    /** GET /jobs: newest first, paged. */
    listJobs: async (request: ApiRequest): Promise<ApiResponse> => {
      const query = parse(listSchema, Object.fromEntries(queryParameters(request)));
      const page = await deps.scheduledJobs.list({
        top: query.top,
        ...(query.continuationToken ? { continuationToken: query.continuationToken } : {}),
      });
      return { status: 200, jsonBody: page };
    },

    /** GET /jobs/{id}/devices: one run's per-device outcomes (the latest run by default), paged, by status. */
    listJobDevices: async (request: ApiRequest): Promise<ApiResponse> => {
      const record = await find(pathParam(request, 'id'));
      const query = parse(devicesSchema, Object.fromEntries(queryParameters(request)));
      const run = query.run ?? record.runs.at(-1)?.run;
      if (run === undefined) return { status: 200, jsonBody: { items: [] } };
      const counts = record.runs.find((r) => r.run === run)?.deviceResults;
      const page = await deps.deviceResults.page(record.id, run, {
        top: query.top,
        ...(query.status ? { status: query.status } : {}),
        ...(query.continuationToken ? { continuationToken: query.continuationToken } : {}),
      });
      return { status: 200, jsonBody: { run, ...(counts ? { deviceResults: counts } : {}), ...page } };
    },
  };
}
