import { randomUUID } from 'node:crypto';
import pLimit from 'p-limit';
import { z } from 'zod';
import {
  DEFAULT_MAX_BULK_BODY_BYTES,
  assertJsonDepth,
  parseRequest as parse,
  pathParam,
  queryParameters,
  readDeclaredText,
  readJson,
  type ApiRequest,
  type ApiResponse,
} from '../shared/api-request.js';
import { DEVICE_ID_PATTERN, assertDeviceId } from '../shared/device-id.js';
import {
  DeviceAlreadyExistsError,
  InvalidTransitionError,
  UnprocessableRequestError,
  ValidationError,
  WorkflowNotFoundError,
} from '../shared/errors.js';
import { failureMessage, isFinished, type WorkflowClient, type WorkflowStatus } from '../shared/workflows.js';
import {
  BULK_PROVISION,
  MAX_BULK_REQUEST_DEVICES,
  chunkInstanceId,
  bulkInvalidBlob,
  bulkRequestBlob,
  type BulkDeviceSpec,
  type BulkProvisionInput,
  type BulkResultLine,
} from './bulk-provisioning-workflow.js';
import { METADATA_DESCRIPTION, metadataSchema, metadataSizeProblems } from './metadata.js';
import { MAX_BULK_DEVICES, type IdentityStore, type PrivateFiles, type SecretCipher } from './ports.js';
import { dropExpiredKeys, dropKeys, hasLiveKeys, servedLines, updateResultLines } from './result-keys.js';
import {
  CANCEL_PROVISIONING_EVENT,
  PROVISION_DEVICE,
  hookFingerprint,
  type ProvisionDeviceInput,
} from './provision-device-workflow.js';

export const specSchema = z
  .strictObject({
    id: z
      .string()
      .regex(DEVICE_ID_PATTERN, 'is not a valid device id')
      .optional()
      .describe('Device id; a UUID is generated when absent'),
    metadata: metadataSchema.optional().describe(METADATA_DESCRIPTION),
  })
  .meta({ id: 'ProvisioningRequest' });

/** Problems reported per bad bulk entry at most (an entry with 5,000 unknown fields is still one line). */
const MAX_PROBLEMS_PER_ENTRY = 10;

/** What a bulk request does with invalid entries: refuse the whole request (default), or skip them. */
export const invalidModeSchema = z
  .enum(['reject', 'skip'])
  .default('reject')
  .describe('What to do with invalid entries: reject the whole request (default) or skip them');

export interface WorkflowHandlerDeps {
  identities: IdentityStore;
  work: PrivateFiles;
  results: PrivateFiles;
  /** Decrypts the device keys of the results (only the results route does). */
  keysCipher: SecretCipher;
  hooks: string[];
  registryOpsPerMinute: number;
  maxMetadataBytes: number;
  /** Largest JSON body accepted, bytes (Http__MaxBodyBytes). */
  maxBodyBytes?: number;
  /** Largest bulk provisioning body accepted, bytes (Http__MaxBulkBodyBytes). */
  maxBulkBodyBytes?: number;
  now?: () => Date;
}

/** `?consume=true`: remove the keys from the results once they are handed out. */
export const resultsQuerySchema = z.strictObject({
  consume: z
    .enum(['true', 'false'], { message: 'must be true or false' })
    .optional()
    .meta({ default: 'false' })
    .describe('true: remove the keys from the stored results once this answer hands them out')
    .transform((v) => v === 'true'),
});

/** Both workflow kinds this API starts, so a status request cannot peek at other orchestrations. */
const PROVISIONING_WORKFLOWS = new Set([PROVISION_DEVICE, BULK_PROVISION]);

/**
 * 202 Accepted with this API's own routes only. Durable's management URLs (what `createCheckStatusResponse`
 * answers) carry the extension's system key, which can read, terminate, raise events on and purge every
 * instance of the task hub, scheduled jobs included: they are never handed out.
 */
function accepted(instanceId: string, extra: Record<string, unknown>): ApiResponse {
  const statusUri = `/api/provisioning/${encodeURIComponent(instanceId)}`;
  return {
    status: 202,
    headers: { location: statusUri, 'retry-after': '5' },
    jsonBody: {
      id: instanceId,
      statusUri,
      resultsUri: `${statusUri}/results`,
      cancelUri: `${statusUri}/cancel`,
      ...extra,
    },
  };
}

/** Media types a bulk body may declare besides JSON. */
const NDJSON_TYPES = ['application/x-ndjson', 'application/jsonl', 'application/jsonlines'];

/** Bulk bodies: a JSON array, or NDJSON (one device per line). */
function parseBulkBody(text: string): unknown[] {
  const trimmed = text.trim();
  if (trimmed === '') throw new ValidationError('A body is required: a JSON array or NDJSON of devices.');
  assertJsonDepth(trimmed);
  if (trimmed.startsWith('[')) {
    try {
      const parsed = JSON.parse(trimmed) as unknown;
      if (Array.isArray(parsed)) return parsed;
    } catch {
      // reported below
    }
    throw new ValidationError('The body is not a valid JSON array.');
  }
  return trimmed.split('\n').flatMap((line, index) => {
    if (line.trim() === '') return [];
    try {
      return [JSON.parse(line) as unknown];
    } catch {
      throw new ValidationError(`Line ${index + 1} of the NDJSON body is not valid JSON.`);
    }
  });
}

/** HTTP starters and status of the provisioning workflows. */
export function makeWorkflowHandlers(deps: WorkflowHandlerDeps) {
  const now = () => (deps.now?.() ?? new Date()).toISOString();
  const checkMetadata = (metadata: Record<string, unknown>, path: string) =>
    metadataSizeProblems(metadata, deps.maxMetadataBytes, path);

  return {
    /** POST /provisioning/devices: starts the provisioning workflow of one device. */
    startProvisioning: async (request: ApiRequest, workflows: WorkflowClient): Promise<ApiResponse> => {
      const body = parse(specSchema, await readJson(request, true, { maxBytes: deps.maxBodyBytes }));
      const deviceId = assertDeviceId(body.id ?? randomUUID());
      const metadata = body.metadata ?? {};
      const problems = checkMetadata(metadata, 'metadata');
      if (problems.length > 0) throw new UnprocessableRequestError('Metadata too large.', problems);
      // Refuse at once what the workflow would refuse later.
      if (await deps.identities.get(deviceId)) throw new DeviceAlreadyExistsError(deviceId);
      const instanceId = `provision-${randomUUID()}`;
      const input: ProvisionDeviceInput = {
        deviceId,
        metadata,
        hooks: deps.hooks.map(hookFingerprint),
        requestedAt: now(),
      };
      await workflows.start(PROVISION_DEVICE, instanceId, input);
      return accepted(instanceId, { deviceId });
    },

    startBulkProvisioning: bulkStarter(deps, checkMetadata, now),

    /** GET /provisioning/{instanceId}: where a provisioning workflow stands (counts, step, outcome). */
    getProvisioning: async (request: ApiRequest, workflows: WorkflowClient): Promise<ApiResponse> => {
      const status = await provisioningStatus(workflows, pathParam(request, 'instanceId'));
      // A failed run's output is the extension's "Orchestrator function '…' failed: …": the reason alone.
      const output = status.runtimeStatus === 'Failed' ? failureMessage(status.output) : status.output;
      return { status: 200, jsonBody: { ...status, output } };
    },

    /**
     * POST /provisioning/{instanceId}/cancel: asks a running workflow to stop. A single device is compensated
     * like a failure (hooks told, catalog entry and identity removed); a bulk run starts no further chunk and
     * reports the devices it did not reach as cancelled. 409 once the workflow has finished.
     */
    cancelProvisioning: async (request: ApiRequest, workflows: WorkflowClient): Promise<ApiResponse> => {
      const instanceId = pathParam(request, 'instanceId');
      const status = await provisioningStatus(workflows, instanceId);
      if (isFinished(status.runtimeStatus)) {
        throw new InvalidTransitionError(
          `Provisioning workflow '${instanceId}' has already finished (${status.runtimeStatus}); nothing to cancel.`,
        );
      }
      const requestedAt = now();
      await workflows.raiseEvent(instanceId, CANCEL_PROVISIONING_EVENT, { requestedAt });
      if (status.name === BULK_PROVISION) await cancelRunningChunks(workflows, status, requestedAt);
      const statusUri = `/api/provisioning/${encodeURIComponent(instanceId)}`;
      return {
        status: 202,
        headers: { location: statusUri, 'retry-after': '5' },
        jsonBody: { id: instanceId, statusUri, status: 'cancelling' },
      };
    },

    getProvisioningResults: resultsReader(deps, now),
  };
}

type Problem = { path: string; message: string };
type InvalidLine = Extract<BulkResultLine, { index: number }>;

/** POST /provisioning/bulk: up to 10,000 devices (JSON array or NDJSON). */
function bulkStarter(
  deps: WorkflowHandlerDeps,
  checkMetadata: (metadata: Record<string, unknown>, path: string) => Problem[],
  now: () => string,
) {
  return async (request: ApiRequest, workflows: WorkflowClient): Promise<ApiResponse> => {
    const items = parseBulkBody(
      await readDeclaredText(request, deps.maxBulkBodyBytes ?? DEFAULT_MAX_BULK_BODY_BYTES, NDJSON_TYPES),
    );
    if (items.length === 0 || items.length > MAX_BULK_REQUEST_DEVICES) {
      throw new UnprocessableRequestError('Wrong number of devices.', [
        {
          path: '(body)',
          message: `has ${items.length} devices; 1 to ${MAX_BULK_REQUEST_DEVICES} allowed`,
        },
      ]);
    }
    const invalidMode = parse(
      z.strictObject({ invalid: invalidModeSchema }),
      Object.fromEntries(queryParameters(request)),
    ).invalid;
    const { specs, problems, invalid } = validateBulkEntries(items, checkMetadata);
    if (problems.length > 0 && (invalidMode === 'reject' || specs.length === 0)) {
      // Every bad entry is listed (at most MAX_PROBLEMS_PER_ENTRY problems each), so one round fixes them all.
      throw new UnprocessableRequestError(
        invalidMode === 'reject'
          ? `${invalid.length} of ${items.length} devices are invalid; nothing was started.`
          : 'No device is valid; nothing was started.',
        problems,
      );
    }
    const instanceId = `bulk-${randomUUID()}`;
    const chunks = Math.ceil(specs.length / MAX_BULK_DEVICES);
    // ?invalid=skip: the skipped entries become `invalid` result lines, published with the run's results.
    if (invalid.length > 0) {
      await deps.work.write(
        bulkInvalidBlob(instanceId),
        invalid.map((line) => JSON.stringify(line)).join('\n') + '\n',
      );
    }
    // The specs go to private blobs, one per chunk; the orchestration input holds only counts.
    const limit = pLimit(8);
    await Promise.all(
      Array.from({ length: chunks }, (_, index) =>
        limit(() =>
          deps.work.write(
            bulkRequestBlob(instanceId, index),
            JSON.stringify(specs.slice(index * MAX_BULK_DEVICES, (index + 1) * MAX_BULK_DEVICES)),
          ),
        ),
      ),
    );
    const input: BulkProvisionInput = {
      total: items.length,
      ...(invalid.length > 0 ? { invalid: invalid.length } : {}),
      chunks,
      opsPerMinute: deps.registryOpsPerMinute,
      requestedAt: now(),
    };
    await workflows.start(BULK_PROVISION, instanceId, input);
    return accepted(instanceId, {
      total: items.length,
      chunks,
      ...(invalid.length > 0 ? { invalid: invalid.length } : {}),
    });
  };
}

/**
 * GET /provisioning/{instanceId}/results[?consume=true]: the run's per-device outcomes (a JSON array), with
 * the keys while their window lasts (the same secrets POST /devices returns; guarded by the function key).
 * Expired keys are removed from the blob here too; `consume=true` removes the keys it hands out.
 */
function resultsReader(deps: WorkflowHandlerDeps, now: () => string) {
  return async (request: ApiRequest, workflows: WorkflowClient): Promise<ApiResponse> => {
    const instanceId = pathParam(request, 'instanceId');
    const { consume } = parse(resultsQuerySchema, Object.fromEntries(queryParameters(request)));
    await provisioningStatus(workflows, instanceId);
    const at = new Date(now());
    // Rewritten (under the blob's ETag) before answering: keys handed out with consume=true are gone even if
    // the answer is lost, and of two concurrent consume=true downloads only the one whose rewrite won gets them.
    const body = await updateResultLines(deps.results, `${instanceId}.jsonl`, (lines) => {
      const expired = dropExpiredKeys(lines, at);
      const served = servedLines(deps.keysCipher, instanceId, expired.lines, at);
      const kept = consume
        ? dropKeys(expired.lines, (line) => (hasLiveKeys(line, at) ? 'consumed' : undefined))
        : { lines: expired.lines, changed: false };
      return { lines: kept.lines, changed: expired.changed || kept.changed, value: served };
    });
    if (body === undefined) throw new WorkflowNotFoundError(instanceId);
    return { status: 200, headers: { 'cache-control': 'no-store' }, jsonBody: body };
  };
}

/**
 * Checks every bulk entry: the valid specs (ids assigned), every problem of every bad entry (at most
 * MAX_PROBLEMS_PER_ENTRY each), and one `invalid` result line per bad entry.
 */
function validateBulkEntries(
  items: readonly unknown[],
  checkMetadata: (metadata: Record<string, unknown>, path: string) => Problem[],
): { specs: BulkDeviceSpec[]; problems: Problem[]; invalid: InvalidLine[] } {
  const problems: Problem[] = [];
  const specs: BulkDeviceSpec[] = [];
  const invalid: InvalidLine[] = [];
  const seen = new Set<string>();
  for (const [index, item] of items.entries()) {
    const found: Problem[] = [];
    const result = specSchema.safeParse(item);
    if (result.success) {
      const id = result.data.id ?? randomUUID();
      if (seen.has(id)) found.push({ path: `${index}.id`, message: `duplicates device '${id}'` });
      seen.add(id);
      const metadata = result.data.metadata ?? {};
      for (const problem of checkMetadata(metadata, `${index}.metadata`)) found.push(problem);
      if (found.length === 0) specs.push({ id, metadata });
    } else {
      for (const issue of result.error.issues) {
        const at = [String(index), ...issue.path.map(String)].join('.');
        if (issue.code === 'unrecognized_keys') {
          for (const key of issue.keys) found.push({ path: `${at}.${key}`, message: 'is not a known field' });
        } else found.push({ path: at, message: issue.message });
      }
    }
    if (found.length === 0) continue;
    const shown = found.slice(0, MAX_PROBLEMS_PER_ENTRY);
    if (found.length > shown.length) {
      shown.push({ path: String(index), message: `and ${found.length - shown.length} more problems` });
    }
    for (const problem of shown) problems.push(problem);
    const givenId = (item as { id?: unknown } | null)?.id;
    invalid.push({
      index,
      ...(typeof givenId === 'string' ? { deviceId: givenId } : {}),
      outcome: 'invalid',
      error: shown.map((p) => `${p.path}: ${p.message}`).join('; '),
    });
  }
  return { specs, problems, invalid };
}

/**
 * A bulk cancel also reaches the chunks running, so one waiting out throttling stops waiting (the run's own
 * event only keeps further chunks from starting). At most MAX_BULK_REQUEST_DEVICES / 100 status look-ups.
 */
async function cancelRunningChunks(
  workflows: WorkflowClient,
  run: WorkflowStatus,
  requestedAt: string,
): Promise<void> {
  const custom = run.customStatus as { chunks?: unknown } | undefined;
  const most = Math.ceil(MAX_BULK_REQUEST_DEVICES / MAX_BULK_DEVICES);
  const chunks = typeof custom?.chunks === 'number' ? Math.min(custom.chunks, most) : 0;
  for (let index = 0; index < chunks; index++) {
    const id = chunkInstanceId(run.instanceId, index);
    const chunk = await workflows.status(id);
    if (chunk && !isFinished(chunk.runtimeStatus))
      await workflows.raiseEvent(id, CANCEL_PROVISIONING_EVENT, { requestedAt });
  }
}

async function provisioningStatus(workflows: WorkflowClient, instanceId: string): Promise<WorkflowStatus> {
  if (!/^(provision|bulk)-[0-9a-f-]{36}$/.test(instanceId)) throw new WorkflowNotFoundError(instanceId);
  const status = await workflows.status(instanceId);
  if (!status || !PROVISIONING_WORKFLOWS.has(status.name)) throw new WorkflowNotFoundError(instanceId);
  return status;
}
