/**
 * Bulk provisioning: up to 10,000 devices per request, created in chunks of at most 100 (IoT Hub's bulk
 * registry limit) by one sub-orchestration per chunk, started in waves paced to the identity registry's
 * rate (IoT Hub S1: 100 operations per minute per unit). A throttled chunk (429) waits on a durable timer
 * and tries again; nothing fails because the hub asked us to slow down.
 *
 * The device specs, the generated keys and the per-device results live in private blobs; history and
 * status only ever hold counts and blob names.
 */
import * as df from 'durable-functions';
import type { OrchestrationContext, Task } from 'durable-functions';
import pLimit from 'p-limit';
import { DeviceAlreadyExistsError, ThrottledError } from '../shared/errors.js';
import { generateKeys, type SymmetricKeys } from './keys.js';
import { MAX_BULK_DEVICES, type IdentityStore, type PrivateFiles } from './ports.js';
import type { DeviceRegistry } from './registry.js';
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

type ChunkReply = { throttled: true; retryAfterMs?: number } | ({ throttled: false } & ChunkCounts);

/** Per-device line of the results blob. Keys appear only here, in the private results container. */
export type BulkResultLine =
  | { deviceId: string; outcome: 'created'; keys: SymmetricKeys; connectionString: string }
  | { deviceId: string; outcome: 'already-exists' | 'invalid' | 'failed'; error: string }
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

/** Parent orchestrator: paced waves of chunk sub-orchestrations, then one results blob. */
export function* bulkProvisionOrchestrator(context: OrchestrationContext): Generator<Task, unknown, unknown> {
  const input = context.df.getInput<BulkProvisionInput>();
  const runId = context.df.instanceId;
  // Chunks per minute that keep the run under the registry rate (at least one, so a run always progresses).
  const perWave = Math.max(1, Math.floor(input.opsPerMinute / MAX_BULK_DEVICES));
  const totals: ChunkCounts = { created: 0, alreadyExists: 0, invalid: input.invalid ?? 0, failed: 0 };
  for (let first = 0; first < input.chunks; first += perWave) {
    const waveStart = context.df.currentUtcDateTime.getTime();
    const indexes = Array.from({ length: Math.min(perWave, input.chunks - first) }, (_, i) => first + i);
    context.df.setCustomStatus({ chunksDone: first, chunks: input.chunks, ...totals });
    const results = (yield context.df.Task.all(
      indexes.map((index) =>
        context.df.callSubOrchestrator(BULK_PROVISION_CHUNK, { runId, index }, `${runId}:chunk:${index}`),
      ),
    )) as ChunkCounts[];
    for (const counts of results) {
      totals.created += counts.created;
      totals.alreadyExists += counts.alreadyExists;
      totals.invalid += counts.invalid;
      totals.failed += counts.failed;
    }
    const more = first + perWave < input.chunks;
    // At least a minute per wave, longer when the rate is below one chunk (100 devices) per minute.
    const nextWave = waveStart + Math.max(60_000, (perWave * MAX_BULK_DEVICES * 60_000) / input.opsPerMinute);
    if (more && context.df.currentUtcDateTime.getTime() < nextWave) {
      yield context.df.createTimer(new Date(nextWave));
    }
  }
  context.df.setCustomStatus({
    chunksDone: input.chunks,
    chunks: input.chunks,
    ...totals,
    step: 'assembling',
  });
  const { results } = (yield context.df.callActivityWithRetry(BulkActivity.assemble, transientRetry(), {
    runId,
    chunks: input.chunks,
    invalid: input.invalid ?? 0,
  })) as { results: string };
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
  now?: () => Date;
}

const countsOf = (lines: readonly BulkResultLine[]): ChunkCounts => ({
  created: lines.filter((l) => l.outcome === 'created').length,
  alreadyExists: lines.filter((l) => l.outcome === 'already-exists').length,
  invalid: lines.filter((l) => l.outcome === 'invalid').length,
  failed: lines.filter((l) => l.outcome === 'failed').length,
});

const parseLines = (text: string): BulkResultLine[] =>
  text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as BulkResultLine);

/** Activity handlers of bulk provisioning; idempotent (a chunk run twice recognises its own identities). */
export function makeBulkProvisioningActivities(deps: BulkProvisioningDeps) {
  const connectionString = (id: string, keys: SymmetricKeys) =>
    `HostName=${deps.hostName};DeviceId=${id};SharedAccessKey=${keys.primaryKey}`;
  const throttledReply = (error: ThrottledError): ChunkReply => ({
    throttled: true,
    ...(error.retryAfterSeconds !== undefined ? { retryAfterMs: error.retryAfterSeconds * 1000 } : {}),
  });
  /** The identity exists and carries the keys this run generated for it. */
  const isOurs = async (deviceId: string, keys: SymmetricKeys) =>
    (await deps.identities.get(deviceId))?.keys.primaryKey === keys.primaryKey;

  /** Registry entry for an identity this run created; the result line with its keys. */
  const completeDevice = async (spec: BulkDeviceSpec, keys: SymmetricKeys): Promise<BulkResultLine> => {
    const now = (deps.now?.() ?? new Date()).toISOString();
    try {
      await deps.registry.create({
        id: spec.id,
        status: 'enabled',
        metadata: spec.metadata,
        createdAt: now,
        updatedAt: now,
      });
    } catch (error) {
      if (!(error instanceof DeviceAlreadyExistsError)) {
        // Same rule as single registration: no identity without a registry entry.
        await deps.identities.delete(spec.id).catch(() => false);
        return { deviceId: spec.id, outcome: 'failed', error: 'registry write failed; identity removed' };
      }
    }
    return { deviceId: spec.id, outcome: 'created', keys, connectionString: connectionString(spec.id, keys) };
  };

  /**
   * The result lines of a chunk that could not finish normally: devices whose identity carries this run's keys
   * are completed and reported with them; every other device is reported failed with the reason.
   */
  const salvage = async (runId: string, index: number, reason: string): Promise<string> => {
    const done = await deps.work.read(bulkChunkResultBlob(runId, index));
    if (done !== undefined) return done;
    const specs = JSON.parse(
      (await deps.work.read(bulkRequestBlob(runId, index))) ?? '[]',
    ) as BulkDeviceSpec[];
    const keysText = await deps.work.read(bulkKeysBlob(runId, index));
    const keys = keysText === undefined ? {} : (JSON.parse(keysText) as Record<string, SymmetricKeys>);
    const limit = pLimit(4);
    const lines = await Promise.all(
      specs.map((spec) =>
        limit(async (): Promise<BulkResultLine> => {
          const ourKeys = keys[spec.id];
          if (ourKeys && (await isOurs(spec.id, ourKeys))) return completeDevice(spec, ourKeys);
          return { deviceId: spec.id, outcome: 'failed', error: `chunk ${index} failed: ${reason}` };
        }),
      ),
    );
    return deps.work.writeOnce(
      bulkChunkResultBlob(runId, index),
      lines.map((line) => JSON.stringify(line)).join('\n') + '\n',
    );
  };

  return {
    [BulkActivity.provisionChunk]: async (input: { runId: string; index: number }): Promise<ChunkReply> => {
      const { runId, index } = input;
      const done = await deps.work.read(bulkChunkResultBlob(runId, index));
      if (done !== undefined) return { throttled: false, ...countsOf(parseLines(done)) };

      const specsText = await deps.work.read(bulkRequestBlob(runId, index));
      if (specsText === undefined) throw new Error(`Chunk ${index} of run '${runId}' has no request blob.`);
      const specs = JSON.parse(specsText) as BulkDeviceSpec[];
      // Keys are fixed (write-once) before any identity exists, so a re-run can tell its own identities apart.
      const keys = JSON.parse(
        await deps.work.writeOnce(
          bulkKeysBlob(runId, index),
          JSON.stringify(Object.fromEntries(specs.map((s) => [s.id, generateKeys()]))),
        ),
      ) as Record<string, SymmetricKeys>;
      const keysOf = (id: string) => keys[id] as SymmetricKeys;

      let outcomes;
      try {
        outcomes = await deps.identities.createMany(
          specs.map((s) => ({ deviceId: s.id, keys: keysOf(s.id) })),
        );
      } catch (error) {
        if (error instanceof ThrottledError) return throttledReply(error);
        throw error;
      }

      const limit = pLimit(8);
      let lines: BulkResultLine[];
      try {
        lines = await Promise.all(
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
              return completeDevice(spec, keysOf(spec.id));
            }),
          ),
        );
      } catch (error) {
        // A throttled look-up: nothing recorded yet, so the whole chunk can run again after a durable wait.
        if (error instanceof ThrottledError) return throttledReply(error);
        throw error;
      }
      const stored = await deps.work.writeOnce(
        bulkChunkResultBlob(runId, index),
        lines.map((line) => JSON.stringify(line)).join('\n') + '\n',
      );
      return { throttled: false, ...countsOf(parseLines(stored)) };
    },

    [BulkActivity.salvageChunk]: async (input: { runId: string; index: number; reason: string }) =>
      countsOf(parseLines(await salvage(input.runId, input.index, input.reason))),

    [BulkActivity.assemble]: async (input: { runId: string; chunks: number; invalid?: number }) => {
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
      const parts: string[] = [];
      for (let index = 0; index < input.chunks; index++) {
        parts.push(await salvage(input.runId, index, 'no result was recorded'));
      }
      if ((input.invalid ?? 0) > 0) {
        const skipped = await deps.work.read(bulkInvalidBlob(input.runId));
        if (skipped === undefined)
          throw new Error(`Run '${input.runId}' lost the list of its invalid entries.`);
        parts.push(skipped);
      }
      await deps.results.write(name, parts.join(''));
      await cleanUp();
      return { results: shown };
    },
  };
}
