/**
 * Bulk provisioning: up to 10,000 devices per request, created in chunks of at most 100 (IoT Hub's bulk
 * registry limit) by one sub-orchestration per chunk, started in waves paced to the identity registry's
 * rate (IoT Hub S1: 100 operations per minute per unit). A throttled chunk (429) waits on a durable timer
 * and tries again; nothing fails because the hub asked us to slow down.
 *
 * The device specs, the generated keys (encrypted) and the per-device results (keys sealed: result-keys.ts)
 * live in private blobs; history and status only ever hold counts and blob names. A chunk whose request blob
 * is gone fails the run (it is never taken for an empty chunk): the identities it had created are removed, the
 * chunks not started are reported failed, the others are reported with their keys.
 */
import * as df from 'durable-functions';
import type { OrchestrationContext, Task } from 'durable-functions';
import { MAX_BULK_DEVICES } from './ports.js';
import { CANCEL_PROVISIONING_EVENT } from './provision-device-workflow.js';
import { CancelWatch } from './throttle-wait.js';
import { failureMessage } from '../shared/workflows.js';

export const BULK_PROVISION = 'bulkProvision';
export const BULK_PROVISION_CHUNK = 'bulkProvisionChunk';
export const BulkActivity = {
  provisionChunk: 'bulkProvisionCreateChunk',
  salvageChunk: 'bulkProvisionSalvageChunk',
  assemble: 'bulkProvisionAssembleResults',
} as const;

/** Instance id of chunk `index` of run `runId`. */
export const chunkInstanceId = (runId: string, index: number) => `${runId}:chunk:${index}`;

/** Largest bulk request accepted. */
export const MAX_BULK_REQUEST_DEVICES = 10_000;

/** One device of a bulk request (validated by the HTTP starter). */
export interface BulkDeviceSpec {
  id: string;
  metadata: Record<string, unknown>;
}

export interface BulkProvisionInput {
  /** Entries in the request, valid or not. */
  total: number;
  /** Entries skipped as invalid (`?invalid=skip`); their result lines wait in `bulkInvalidBlob`. */
  invalid?: number;
  chunks: number;
  /** Identity-registry operations per minute this run may use; each device counts as one. */
  opsPerMinute: number;
  requestedAt: string;
}

export interface ChunkCounts {
  created: number;
  alreadyExists: number;
  invalid: number;
  failed: number;
}

/** What a chunk ends with; `lost` when its request blob was gone (the run then fails with that reason). */
export type ChunkOutcome = ChunkCounts & { lost?: string };

export type ChunkReply = { throttled: true; retryAfterMs?: number } | ({ throttled: false } & ChunkOutcome);

/** Per-device line of the results blob. Keys appear only here, sealed, in the private containers. */
export type BulkResultLine =
  | { deviceId: string; outcome: 'created'; sealed: string; keysExpireAt?: string; note?: string }
  | { deviceId: string; outcome: 'already-exists' | 'invalid' | 'failed' | 'cancelled'; error: string }
  /** An entry of the request skipped as invalid (`?invalid=skip`): its position, and its id when it had one. */
  | { index: number; deviceId?: string; outcome: 'invalid'; error: string };

/** Kept beside the results of a failed run: why it failed, so a retried assembly reports it again. */
export const bulkFailureBlob = (runId: string) => `${runId}.failure.json`;
export const bulkRequestBlob = (runId: string, chunk: number) => `requests/${runId}/${chunk}.json`;
/** The `invalid` result lines of the entries a `?invalid=skip` request skipped (NDJSON). */
export const bulkInvalidBlob = (runId: string) => `requests/${runId}/invalid.jsonl`;
export const bulkKeysBlob = (runId: string, chunk: number) => `keys/${runId}/${chunk}.json`;
export const bulkChunkResultBlob = (runId: string, chunk: number) => `results/${runId}/${chunk}.jsonl`;

/** Throttled chunks wait (durable timer) at most this many times before the run gives up on them. */
const MAX_THROTTLE_WAITS = 20;

export function transientRetry(): df.RetryOptions {
  const options = new df.RetryOptions(5000, 4);
  options.backoffCoefficient = 2;
  return options;
}

/**
 * Parent orchestrator: paced waves of chunk sub-orchestrations, then one results blob. A cancel event (seen
 * between waves and ending the wait for the next one) starts no further chunk; the cancel route also raises it
 * on the chunks running (`chunkInstanceId`), so a chunk waiting out throttling stops waiting. A chunk's devices
 * are each either created with their catalog entry and reported with their keys, or removed, or reported
 * `cancelled`.
 * A chunk that lost its input or failed stops the run too: no further wave; assembly always runs, writes a
 * result per device and removes the work blobs, then the run fails with the reasons.
 */
export function* bulkProvisionOrchestrator(context: OrchestrationContext): Generator<Task, unknown, unknown> {
  const input = context.df.getInput<BulkProvisionInput>();
  const runId = context.df.instanceId;
  const cancel = new CancelWatch(context, context.df.waitForExternalEvent(CANCEL_PROVISIONING_EVENT));
  // Chunks per minute that keep the run under the identity registry's rate (at least one, so a run always progresses).
  const perWave = Math.max(1, Math.floor(input.opsPerMinute / MAX_BULK_DEVICES));
  const totals: ChunkCounts = { created: 0, alreadyExists: 0, invalid: input.invalid ?? 0, failed: 0 };
  let cancelledFrom: number | undefined;
  const lost: string[] = [];
  const stopped = () => lost.length > 0;
  for (let first = 0; first < input.chunks && !stopped(); first += perWave) {
    if (cancel.requested()) {
      cancelledFrom = first;
      break;
    }
    const waveStart = context.df.currentUtcDateTime.getTime();
    const indexes = Array.from({ length: Math.min(perWave, input.chunks - first) }, (_, i) => first + i);
    context.df.setCustomStatus({ chunksDone: first, chunks: input.chunks, ...totals });
    const tasks = indexes.map((index) =>
      context.df.callSubOrchestrator(BULK_PROVISION_CHUNK, { runId, index }, chunkInstanceId(runId, index)),
    );
    for (const [k, task] of tasks.entries()) {
      try {
        const counts = (yield* cancel.await(task)) as ChunkOutcome;
        totals.created += counts.created;
        totals.alreadyExists += counts.alreadyExists;
        totals.invalid += counts.invalid;
        totals.failed += counts.failed;
        if (counts.lost !== undefined) lost.push(counts.lost);
      } catch (error) {
        // Its devices are salvaged (reported or removed) by the assembly.
        lost.push(`chunk ${indexes[k] ?? '?'} failed: ${failureMessage(error) || 'failed'}`);
      }
    }
    // A lost input stops the run: no further wave starts.
    const more = first + perWave < input.chunks && !stopped();
    // At least a minute per wave, longer when the rate is below one chunk (100 devices) per minute.
    const nextWave = waveStart + Math.max(60_000, (perWave * MAX_BULK_DEVICES * 60_000) / input.opsPerMinute);
    if (more && !cancel.requested() && context.df.currentUtcDateTime.getTime() < nextWave) {
      const timer = context.df.createTimer(new Date(nextWave));
      if ((yield context.df.Task.any([timer, cancel.event])) === cancel.event) timer.cancel();
    }
  }
  const chunksDone = cancelledFrom ?? input.chunks;
  context.df.setCustomStatus({ chunksDone, chunks: input.chunks, ...totals, step: 'assembling' });
  const assembled = (yield context.df.callActivityWithRetry(BulkActivity.assemble, transientRetry(), {
    runId,
    chunks: input.chunks,
    ...(cancelledFrom === undefined ? {} : { cancelledFrom }),
    ...(lost.length > 0 ? { stopped: lost[0] } : {}),
    invalid: input.invalid ?? 0,
  })) as { results: string; lost?: string[] };
  // What the assembly found (inputs lost since, identities removed) is added to what the chunks reported.
  for (const reason of assembled.lost ?? []) if (!lost.includes(reason)) lost.push(reason);
  if (lost.length > 0) {
    const reason = lost.join('; ');
    context.df.setCustomStatus({ chunks: input.chunks, step: 'failed', reason, results: assembled.results });
    throw new Error(
      `Bulk run '${runId}' failed: ${reason}. Devices created and kept are reported with their keys in ${assembled.results}.`,
    );
  }
  const { results } = assembled;
  // Devices no count covers were reported `cancelled`: by the chunks the cancel kept from starting, or by a
  // running chunk the forwarded cancel stopped in a throttle wait.
  const reached = totals.created + totals.alreadyExists + totals.invalid + totals.failed;
  if (cancelledFrom !== undefined || (cancel.requested() && reached < input.total)) {
    const summary = { total: input.total, ...totals, cancelled: input.total - reached };
    context.df.setCustomStatus({ chunksDone, chunks: input.chunks, ...summary, step: 'cancelled' });
    return { status: 'cancelled', ...summary, results };
  }
  // A cancel that came while the last wave ran: every chunk had started; it changed nothing.
  const late = cancel.requested()
    ? {
        cancelRequested: true,
        cancelNote: 'the cancel arrived after every chunk had started; no device was cancelled',
      }
    : {};
  context.df.setCustomStatus({
    chunksDone: input.chunks,
    chunks: input.chunks,
    ...totals,
    ...late,
    step: 'done',
  });
  return { total: input.total, ...totals, ...late, results };
}

/** Chunk sub-orchestrator: create up to 100 devices; on 429 wait with a durable timer and try again. */
export function* bulkProvisionChunkOrchestrator(
  context: OrchestrationContext,
): Generator<Task, unknown, unknown> {
  const input = context.df.getInput<{ runId: string; index: number }>();
  // Forwarded by the parent when the run is cancelled: ends a throttle wait.
  const cancelEvent = context.df.waitForExternalEvent(CANCEL_PROVISIONING_EVENT);
  let reason: string;
  let outcome: 'failed' | 'cancelled' = 'failed';
  try {
    for (let wait = 1; ; wait++) {
      const reply = (yield context.df.callActivityWithRetry(
        BulkActivity.provisionChunk,
        transientRetry(),
        input,
      )) as ChunkReply;
      if (!reply.throttled) {
        const { throttled: _throttled, ...counts } = reply;
        return counts;
      }
      if (wait > MAX_THROTTLE_WAITS) throw new Error(`still throttled after ${MAX_THROTTLE_WAITS} waits`);
      context.df.setCustomStatus({ throttledWaits: wait });
      // IoT Hub's Retry-After when it gave one, otherwise 10 s doubling up to 5 minutes.
      const delay = reply.retryAfterMs ?? Math.min(300_000, 10_000 * 2 ** (wait - 1));
      const timer = context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + delay));
      if ((yield context.df.Task.any([timer, cancelEvent])) === cancelEvent) {
        timer.cancel();
        outcome = 'cancelled';
        throw new Error('cancelled by request');
      }
    }
  } catch (error) {
    reason = failureMessage(error) || 'failed';
  }
  // The chunk gave up: record per device what did happen (identities created with our keys are kept and
  // reported with them). Should this fail too, the parent's assembly salvages the chunk again.
  context.df.setCustomStatus({ salvaging: true, reason });
  return yield context.df.callActivityWithRetry(BulkActivity.salvageChunk, transientRetry(), {
    ...input,
    reason,
    outcome,
  });
}
