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
import pLimit from 'p-limit';
import { ServiceUnavailableError, StaleRegistryEntryError } from '../shared/errors.js';
import { generateKeys, type SymmetricKeys } from './keys.js';
import { MAX_BULK_DEVICES, type IdentityStore, type PrivateFiles, type SecretCipher } from './ports.js';
import { CANCEL_PROVISIONING_EVENT } from './provision-device-workflow.js';
import { claimRegistryEntry, deleteOwnRegistryEntry, type DeviceRegistry } from './registry.js';
import {
  keysExpiry,
  openKeysFile,
  parseResultLines,
  resultLinesText,
  sealKeysFile,
  sealSecrets,
} from './result-keys.js';
import { CancelWatch } from './throttle-wait.js';
import { failureMessage } from '../shared/workflows.js';

export const BULK_PROVISION = 'bulkProvision';
export const BULK_PROVISION_CHUNK = 'bulkProvisionChunk';
export const BulkActivity = {
  provisionChunk: 'bulkProvisionCreateChunk',
  salvageChunk: 'bulkProvisionSalvageChunk',
  assemble: 'bulkProvisionAssembleResults',
} as const;

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

type ChunkReply = { throttled: true; retryAfterMs?: number } | ({ throttled: false } & ChunkOutcome);

/** Per-device line of the results blob. Keys appear only here, sealed, in the private containers. */
export type BulkResultLine =
  | { deviceId: string; outcome: 'created'; sealed: string; keysExpireAt?: string }
  | { deviceId: string; outcome: 'already-exists' | 'invalid' | 'failed' | 'cancelled'; error: string }
  /** An entry of the request skipped as invalid (`?invalid=skip`): its position, and its id when it had one. */
  | { index: number; deviceId?: string; outcome: 'invalid'; error: string };

export const bulkRequestBlob = (runId: string, chunk: number) => `requests/${runId}/${chunk}.json`;
/** The `invalid` result lines of the entries a `?invalid=skip` request skipped (NDJSON). */
export const bulkInvalidBlob = (runId: string) => `requests/${runId}/invalid.jsonl`;
const bulkKeysBlob = (runId: string, chunk: number) => `keys/${runId}/${chunk}.json`;
const bulkChunkResultBlob = (runId: string, chunk: number) => `results/${runId}/${chunk}.jsonl`;

/** Throttled chunks wait (durable timer) at most this many times before the run gives up on them. */
const MAX_THROTTLE_WAITS = 20;

function transientRetry(): df.RetryOptions {
  const options = new df.RetryOptions(5000, 4);
  options.backoffCoefficient = 2;
  return options;
}

/**
 * Parent orchestrator: paced waves of chunk sub-orchestrations, then one results blob. A cancel event (seen
 * between waves and ending the wait for the next one) starts no further chunk: the chunks already running
 * finish (every device either created with its registry entry and reported with its keys, or its identity
 * removed), and the devices never reached are reported `cancelled`.
 */
export function* bulkProvisionOrchestrator(context: OrchestrationContext): Generator<Task, unknown, unknown> {
  const input = context.df.getInput<BulkProvisionInput>();
  const runId = context.df.instanceId;
  const cancel = new CancelWatch(context, context.df.waitForExternalEvent(CANCEL_PROVISIONING_EVENT));
  // Chunks per minute that keep the run under the registry rate (at least one, so a run always progresses).
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
    const results = (yield* cancel.await(
      context.df.Task.all(
        indexes.map((index) =>
          context.df.callSubOrchestrator(BULK_PROVISION_CHUNK, { runId, index }, `${runId}:chunk:${index}`),
        ),
      ),
    )) as ChunkOutcome[];
    for (const counts of results) {
      totals.created += counts.created;
      totals.alreadyExists += counts.alreadyExists;
      totals.invalid += counts.invalid;
      totals.failed += counts.failed;
      if (counts.lost !== undefined) lost.push(counts.lost);
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
  // Inputs found lost only at assembly (the chunk had been salvaged, or its blobs vanished since) fail it too.
  if (lost.length === 0) for (const reason of assembled.lost ?? []) lost.push(reason);
  if (lost.length > 0) {
    const reason = lost.join('; ');
    context.df.setCustomStatus({ chunks: input.chunks, step: 'failed', reason, results: assembled.results });
    throw new Error(
      `Bulk run '${runId}' failed: ${reason}. Devices created by the other chunks are reported with their keys in ${assembled.results}.`,
    );
  }
  const { results } = assembled;
  if (cancelledFrom !== undefined) {
    const reached = totals.created + totals.alreadyExists + totals.invalid + totals.failed;
    const summary = { total: input.total, ...totals, cancelled: input.total - reached };
    context.df.setCustomStatus({ chunksDone, chunks: input.chunks, ...summary, step: 'cancelled' });
    return { status: 'cancelled', ...summary, results };
  }
  context.df.setCustomStatus({ chunksDone: input.chunks, chunks: input.chunks, ...totals, step: 'done' });
  return { total: input.total, ...totals, results };
}

/** Chunk sub-orchestrator: create up to 100 devices; on 429 wait with a durable timer and try again. */
export function* bulkProvisionChunkOrchestrator(
  context: OrchestrationContext,
): Generator<Task, unknown, unknown> {
  const input = context.df.getInput<{ runId: string; index: number }>();
  let reason: string;
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
      yield context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + delay));
    }
  } catch (error) {
    reason = failureMessage(error) || 'failed';
  }
  // The chunk gave up: record per device what did happen (identities created with our keys are kept and
  // reported with them), so the run still completes and no key is lost.
  context.df.setCustomStatus({ salvaging: true, reason });
  return yield context.df.callActivityWithRetry(BulkActivity.salvageChunk, transientRetry(), {
    ...input,
    reason,
  });
}

export interface BulkProvisioningDeps {
  identities: IdentityStore;
  registry: DeviceRegistry;
  work: PrivateFiles;
  results: PrivateFiles;
  /** Name of the results container, shown with the blob name. */
  resultsContainer: string;
  hostName: string;
  /** Encrypts the generated keys in the work and results blobs. */
  cipher: SecretCipher;
  /** How long the results serve the keys, ms. */
  keysRetentionMs: number;
  now?: () => Date;
}

const countsOf = (lines: readonly BulkResultLine[]): ChunkCounts => ({
  created: lines.filter((l) => l.outcome === 'created').length,
  alreadyExists: lines.filter((l) => l.outcome === 'already-exists').length,
  invalid: lines.filter((l) => l.outcome === 'invalid').length,
  failed: lines.filter((l) => l.outcome === 'failed').length,
});

const parseLines = (text: string): BulkResultLine[] => parseResultLines(text) as BulkResultLine[];

/** Lines as a chunk result blob holds them (one JSON object per line). */
const linesText = (lines: readonly BulkResultLine[]): string =>
  lines.map((line) => JSON.stringify(line) + '\n').join('');

/** Activity handlers of bulk provisioning; idempotent (a chunk run twice recognises its own identities). */
export function makeBulkProvisioningActivities(deps: BulkProvisioningDeps) {
  const connectionString = (id: string, keys: SymmetricKeys) =>
    `HostName=${deps.hostName};DeviceId=${id};SharedAccessKey=${keys.primaryKey}`;
  const throttledReply = (error: ServiceUnavailableError): ChunkReply => ({
    throttled: true,
    ...(error.retryAfterSeconds !== undefined ? { retryAfterMs: error.retryAfterSeconds * 1000 } : {}),
  });
  /** The keys this run generated for the devices of a chunk, if any were. */
  const readKeys = async (runId: string, index: number) => {
    const name = bulkKeysBlob(runId, index);
    const text = await deps.work.read(name);
    return (text === undefined ? {} : openKeysFile(deps.cipher, name, text)) as Record<string, SymmetricKeys>;
  };
  /** The identity exists and carries the keys this run generated for it. */
  const isOurs = async (deviceId: string, keys: SymmetricKeys) =>
    (await deps.identities.get(deviceId))?.keys.primaryKey === keys.primaryKey;

  /**
   * Registry entry (tagged with the run's id) for an identity this run created; the result line with its keys.
   * Throttling and outages propagate (the chunk waits and runs again); any other failure removes the identity.
   */
  const completeDevice = async (
    runId: string,
    spec: BulkDeviceSpec,
    keys: SymmetricKeys,
  ): Promise<BulkResultLine> => {
    const now = (deps.now?.() ?? new Date()).toISOString();
    try {
      await claimRegistryEntry(
        deps.registry,
        { id: spec.id, status: 'enabled', metadata: spec.metadata, createdAt: now, updatedAt: now },
        runId,
      );
    } catch (error) {
      if (error instanceof ServiceUnavailableError) throw error;
      // Same rule as single registration: no identity without a registry entry (a stale entry of another
      // writer is left alone).
      await deps.identities.delete(spec.id).catch(() => false);
      const why =
        error instanceof StaleRegistryEntryError ? 'a stale registry entry exists' : 'registry write failed';
      return { deviceId: spec.id, outcome: 'failed', error: `${why}; identity removed` };
    }
    return {
      deviceId: spec.id,
      outcome: 'created',
      sealed: sealSecrets(deps.cipher, runId, spec.id, {
        keys,
        connectionString: connectionString(spec.id, keys),
      }),
    };
  };

  /**
   * A chunk whose request blob is gone: the run fails. Identities it created (they carry the keys of its keys
   * blob) are removed, its own registry entry first, so none is left whose keys nobody has. Idempotent.
   */
  const lostChunk = async (runId: string, index: number): Promise<string> => {
    const keys = await readKeys(runId, index);
    let removed = 0;
    for (const [deviceId, ourKeys] of Object.entries(keys)) {
      if (!(await isOurs(deviceId, ourKeys))) continue;
      await deleteOwnRegistryEntry(deps.registry, deviceId, runId);
      await deps.identities.delete(deviceId);
      removed++;
    }
    return (
      `chunk ${index} has no request blob (the run's work files were lost)` +
      (removed > 0 ? `; the ${removed} identities it had created were removed` : '')
    );
  };

  /**
   * The result lines of a chunk that could not finish normally: devices whose identity carries this run's keys
   * are completed and reported with them; every other device is reported failed with the reason.
   */
  const salvage = async (
    runId: string,
    index: number,
    reason: string,
    outcome: 'failed' | 'cancelled' = 'failed',
  ): Promise<{ text: string; lost?: string }> => {
    const done = await deps.work.read(bulkChunkResultBlob(runId, index));
    if (done !== undefined) return { text: done };
    const specsText = await deps.work.read(bulkRequestBlob(runId, index));
    // A missing request is a lost input, never an empty chunk.
    if (specsText === undefined) return { text: '', lost: await lostChunk(runId, index) };
    const specs = JSON.parse(specsText) as BulkDeviceSpec[];
    const keys = await readKeys(runId, index);
    const limit = pLimit(4);
    const lines = await Promise.all(
      specs.map((spec) =>
        limit(async (): Promise<BulkResultLine> => {
          const ourKeys = keys[spec.id];
          if (ourKeys && (await isOurs(spec.id, ourKeys))) return completeDevice(runId, spec, ourKeys);
          if (outcome === 'cancelled') return { deviceId: spec.id, outcome, error: reason };
          return { deviceId: spec.id, outcome: 'failed', error: `chunk ${index} failed: ${reason}` };
        }),
      ),
    );
    return { text: await deps.work.writeOnce(bulkChunkResultBlob(runId, index), linesText(lines)) };
  };

  return {
    [BulkActivity.provisionChunk]: async (input: { runId: string; index: number }): Promise<ChunkReply> => {
      const { runId, index } = input;
      const done = await deps.work.read(bulkChunkResultBlob(runId, index));
      if (done !== undefined) return { throttled: false, ...countsOf(parseLines(done)) };

      const specsText = await deps.work.read(bulkRequestBlob(runId, index));
      if (specsText === undefined) {
        // Not retried: a missing blob does not come back.
        return { throttled: false, ...countsOf([]), lost: await lostChunk(runId, index) };
      }
      const specs = JSON.parse(specsText) as BulkDeviceSpec[];
      // Keys are fixed (write-once) before any identity exists, so a re-run can tell its own identities apart.
      const keysName = bulkKeysBlob(runId, index);
      const keys = openKeysFile(
        deps.cipher,
        keysName,
        await deps.work.writeOnce(
          keysName,
          sealKeysFile(deps.cipher, keysName, Object.fromEntries(specs.map((s) => [s.id, generateKeys()]))),
        ),
      ) as Record<string, SymmetricKeys>;
      const keysOf = (id: string) => keys[id] as SymmetricKeys;

      let outcomes;
      try {
        outcomes = await deps.identities.createMany(
          specs.map((s) => ({ deviceId: s.id, keys: keysOf(s.id) })),
        );
      } catch (error) {
        if (error instanceof ServiceUnavailableError) return throttledReply(error);
        throw error;
      }

      const limit = pLimit(8);
      // Settled, not raced: every device's work has ended before this activity answers.
      const settled = await Promise.allSettled(
        specs.map((spec, i) =>
          limit(async (): Promise<BulkResultLine> => {
            const outcome = outcomes[i];
            let ours = outcome?.ok === true;
            if (outcome && !outcome.ok && outcome.error === 'already-exists') {
              // Ours from an earlier attempt of this chunk when the stored keys are the ones generated here.
              ours = await isOurs(spec.id, keysOf(spec.id));
            }
            if (!ours) {
              const error = outcome && !outcome.ok ? outcome : undefined;
              return {
                deviceId: spec.id,
                outcome:
                  error?.error === 'already-exists' || error?.error === 'invalid' ? error.error : 'failed',
                error: error?.message ?? 'no outcome from the identity store',
              };
            }
            return completeDevice(runId, spec, keysOf(spec.id));
          }),
        ),
      );
      const lines: BulkResultLine[] = [];
      for (const result of settled) {
        if (result.status === 'fulfilled') {
          lines.push(result.value);
          continue;
        }
        // A throttled look-up or registry write: nothing recorded yet, so the whole chunk can run again after a
        // durable wait (identities and entries already made are recognised as ours by their keys and token).
        if (result.reason instanceof ServiceUnavailableError) return throttledReply(result.reason);
        throw result.reason;
      }
      const stored = await deps.work.writeOnce(bulkChunkResultBlob(runId, index), linesText(lines));
      return { throttled: false, ...countsOf(parseLines(stored)) };
    },

    [BulkActivity.salvageChunk]: async (input: {
      runId: string;
      index: number;
      reason: string;
    }): Promise<ChunkOutcome> => {
      const { text, lost } = await salvage(input.runId, input.index, input.reason);
      return { ...countsOf(parseLines(text)), ...(lost !== undefined ? { lost } : {}) };
    },

    [BulkActivity.assemble]: async (input: {
      runId: string;
      chunks: number;
      cancelledFrom?: number;
      stopped?: string;
      invalid?: number;
    }) => {
      const name = `${input.runId}.jsonl`;
      const shown = `${deps.resultsContainer}/${name}`;
      const cleanUp = async () => {
        for (const prefix of ['requests', 'keys', 'results'])
          await deps.work.deletePrefix(`${prefix}/${input.runId}/`);
      };
      if ((await deps.results.read(name)) !== undefined) {
        // Assembled by an earlier attempt, which may have stopped half-way through the clean-up.
        await cleanUp();
        return { results: shown };
      }
      const reason =
        input.stopped === undefined
          ? 'no result was recorded'
          : `not provisioned, the run stopped: ${input.stopped}`;
      const lines: BulkResultLine[] = [];
      const lost: string[] = [];
      for (let index = 0; index < input.chunks; index++) {
        // Chunks a cancel kept from starting: their devices were never touched.
        const cancelled = input.cancelledFrom !== undefined && index >= input.cancelledFrom;
        const part = await (cancelled
          ? salvage(input.runId, index, 'cancelled by request', 'cancelled')
          : salvage(input.runId, index, reason));
        for (const line of parseLines(part.text)) lines.push(line);
        if (part.lost !== undefined) lost.push(part.lost);
      }
      if ((input.invalid ?? 0) > 0) {
        const skipped = await deps.work.read(bulkInvalidBlob(input.runId));
        if (skipped === undefined)
          throw new Error(`Run '${input.runId}' lost the list of its invalid entries.`);
        for (const line of parseLines(skipped)) lines.push(line);
      }
      const expireAt = keysExpiry(deps.now?.() ?? new Date(), deps.keysRetentionMs);
      await deps.results.write(
        name,
        resultLinesText(
          lines.map((line) => (line.outcome === 'created' ? { ...line, keysExpireAt: expireAt } : line)),
        ),
      );
      await cleanUp();
      return { results: shown, ...(lost.length > 0 ? { lost } : {}) };
    },
  };
}
