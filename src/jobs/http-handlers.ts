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
import type { JobRecord, JobStore } from './ports.js';
import { CANCEL_EVENT, SCHEDULED_JOB, type ScheduledJobInput } from './scheduled-job-workflow.js';

const listSchema = z.strictObject({
  top: z.coerce.number().int().min(1).max(100).default(50),
  continuationToken: z.string().min(1).optional(),
});

/** Server-generated ids: safe as Cosmos ids, IoT Hub job ids and orchestration instance ids. */
const JOB_ID = /^job-[0-9a-f-]{36}$/;

export interface JobHandlerDeps {
  jobs: JobStore;
  /** How often running IoT Hub jobs are polled, ms. */
  pollIntervalMs: number;
  /** Largest JSON body accepted, bytes (Http__MaxBodyBytes). */
  maxBodyBytes?: number;
  now?: () => Date;
}

/** HTTP API of scheduled twin-update and direct-method jobs. */
export function makeJobHandlers(deps: JobHandlerDeps) {
  const now = () => (deps.now?.() ?? new Date()).toISOString();
  const find = async (id: string): Promise<JobRecord> => {
    const record = JOB_ID.test(id) ? await deps.jobs.get(id) : undefined;
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
      const record: JobRecord = {
        id,
        request: job,
        status: 'scheduled',
        createdAt: at,
        updatedAt: at,
        ...(job.startAt ? { nextRunAt: job.startAt } : {}),
        runs: [],
      };
      await deps.jobs.create(record);
      const input: ScheduledJobInput = {
        jobId: id,
        request: job,
        run: 1,
        pollIntervalMs: deps.pollIntervalMs,
      };
      await workflows.start(SCHEDULED_JOB, id, input);
      return { status: 202, headers: { location: `/api/jobs/${id}` }, jsonBody: record };
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

    /** GET /jobs: newest first, paged. */
    listJobs: async (request: ApiRequest): Promise<ApiResponse> => {
      const query = parse(listSchema, Object.fromEntries(queryParameters(request)));
      const page = await deps.jobs.list({
        top: query.top,
        ...(query.continuationToken ? { continuationToken: query.continuationToken } : {}),
      });
      return { status: 200, jsonBody: page };
    },

    /** DELETE /jobs/{id}: cancels the orchestration and the running IoT Hub job (202: it happens next). */
    cancelJob: async (request: ApiRequest, workflows: WorkflowClient): Promise<ApiResponse> => {
      const record = await find(pathParam(request, 'id'));
      const status = await workflows.status(record.id);
      if (!status || isFinished(status.runtimeStatus)) {
        throw new InvalidTransitionError(
          `Job '${record.id}' is ${record.status}; there is nothing to cancel.`,
        );
      }
      await workflows.raiseEvent(record.id, CANCEL_EVENT, { requestedAt: now() });
      return { status: 202, jsonBody: { id: record.id, status: 'cancelling' } };
    },
  };
}
