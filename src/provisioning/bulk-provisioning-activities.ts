/**
 * Activities of bulk provisioning (orchestrators: bulk-provisioning-workflow.ts). Idempotent: a chunk run twice
 * recognises its own identities by the keys fixed (write-once, encrypted) before any identity exists, and its
 * catalog entries by the run's id (creationToken).
 *
 * Every identity the run creates ends up either reported with its keys in the results or removed. When the work
 * blobs that say which identities are ours are gone (request, keys and chunk results of a crash), the assembly
 * still finds them by their catalog entries (`creationToken` = run id) and removes those no result reports.
 */
import pLimit from 'p-limit';
import { ConcurrentUpdateError, ServiceUnavailableError, StaleCatalogEntryError } from '../shared/errors.js';
import { failureMessage } from '../shared/workflows.js';
import {
  BulkActivity,
  bulkChunkResultBlob,
  bulkFailureBlob,
  bulkInvalidBlob,
  bulkKeysBlob,
  bulkRequestBlob,
  type BulkDeviceSpec,
  type BulkResultLine,
  type ChunkCounts,
  type ChunkOutcome,
  type ChunkReply,
} from './bulk-provisioning-workflow.js';
import { deviceConnectionString, generateKeys, type SymmetricKeys } from './keys.js';
import {
  MAX_BULK_DEVICES,
  type BulkOutcome,
  type IdentityStore,
  type PrivateFiles,
  type SecretCipher,
} from './ports.js';
import { claimCatalogEntry, deleteOwnCatalogEntry, type DeviceCatalog } from './catalog.js';
import {
  keysExpiry,
  openKeysFile,
  parseResultLines,
  resultLinesText,
  sealKeysFile,
  sealSecrets,
} from './result-keys.js';

export interface BulkProvisioningDeps {
  identities: IdentityStore;
  catalog: DeviceCatalog;
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

/** The keys of a chunk: absent when no keys blob exists, `problem` when it does not decrypt. */
type ChunkKeys = { keys: Record<string, SymmetricKeys>; problem?: string };

/** The keys this run generated for the devices of a chunk, if any were and they can be read. */
async function readKeys(deps: BulkProvisioningDeps, runId: string, index: number): Promise<ChunkKeys> {
  const name = bulkKeysBlob(runId, index);
  const text = await deps.work.read(name);
  if (text === undefined) return { keys: {} };
  try {
    return { keys: openKeysFile(deps.cipher, name, text) as Record<string, SymmetricKeys> };
  } catch (error) {
    return { keys: {}, problem: `its keys blob could not be read (${failureMessage(error)})` };
  }
}

/**
 * The keys of a chunk's devices, fixed (write-once) before any identity exists so a re-run can tell its own
 * identities apart: the ones an earlier attempt wrote when there are some.
 */
async function fixKeys(
  deps: BulkProvisioningDeps,
  runId: string,
  index: number,
  specs: readonly BulkDeviceSpec[],
): Promise<Record<string, SymmetricKeys>> {
  const name = bulkKeysBlob(runId, index);
  const fresh = Object.fromEntries(specs.map((s) => [s.id, generateKeys()]));
  const stored = await deps.work.writeOnce(name, sealKeysFile(deps.cipher, name, fresh));
  return openKeysFile(deps.cipher, name, stored) as Record<string, SymmetricKeys>;
}

/** The identity exists and carries the keys this run generated for it. */
const isOurs = async (deps: BulkProvisioningDeps, deviceId: string, keys: SymmetricKeys) =>
  (await deps.identities.get(deviceId))?.keys.primaryKey === keys.primaryKey;

const createdLine = (
  deps: BulkProvisioningDeps,
  runId: string,
  id: string,
  keys: SymmetricKeys,
  note?: string,
): BulkResultLine => ({
  deviceId: id,
  outcome: 'created',
  sealed: sealSecrets(deps.cipher, runId, id, {
    keys,
    connectionString: deviceConnectionString(deps.hostName, id, keys),
  }),
  ...(note === undefined ? {} : { note }),
});

const throttledReply = (error: ServiceUnavailableError): ChunkReply => ({
  throttled: true,
  ...(error.retryAfterSeconds !== undefined ? { retryAfterMs: error.retryAfterSeconds * 1000 } : {}),
});

/**
 * Catalog entry (tagged with the run's id) for an identity this run created; the result line with its keys.
 * Throttling and outages propagate (the chunk waits and runs again) unless `salvaging`: then the identity is
 * removed (or, if even that fails, reported with its keys), never the whole chunk given up. Any other failure
 * removes the identity.
 */
async function completeDevice(
  deps: BulkProvisioningDeps,
  runId: string,
  spec: BulkDeviceSpec,
  keys: SymmetricKeys,
  salvaging = false,
): Promise<BulkResultLine> {
  const now = (deps.now?.() ?? new Date()).toISOString();
  try {
    await claimCatalogEntry(
      deps.catalog,
      { id: spec.id, status: 'enabled', metadata: spec.metadata, createdAt: now, updatedAt: now },
      runId,
    );
  } catch (error) {
    // An outage waits for the whole chunk; a race on this one id that kept being lost fails this device only
    // (it is no outage: the other devices of the chunk must not wait for it).
    const outage = error instanceof ServiceUnavailableError && !(error instanceof ConcurrentUpdateError);
    if (outage && !salvaging) throw error;
    // Same rule as single registration: no identity without a catalog entry (a stale entry of another
    // writer is left alone).
    const why =
      error instanceof StaleCatalogEntryError
        ? 'a stale catalog entry exists'
        : error instanceof ConcurrentUpdateError
          ? 'the catalog entry kept changing concurrently'
          : error instanceof ServiceUnavailableError
            ? 'the device catalog stayed unavailable'
            : 'catalog write failed';
    if (
      !(await deps.identities.delete(spec.id).then(
        () => true,
        () => false,
      ))
    )
      return createdLine(deps, runId, spec.id, keys, `${why}; the identity has no catalog entry`);
    return { deviceId: spec.id, outcome: 'failed', error: `${why}; identity removed` };
  }
  return createdLine(deps, runId, spec.id, keys);
}

/**
 * A chunk whose request blob is gone: the run fails. Identities it created that carry the keys of its keys
 * blob are removed, its own catalog entry first. When the keys blob is gone too, the assembly removes the
 * run's identities by their catalog entries; the reason names what cannot be found that way. Idempotent.
 */
async function lostChunk(deps: BulkProvisioningDeps, runId: string, index: number): Promise<string> {
  const { keys, problem } = await readKeys(deps, runId, index);
  let removed = 0;
  for (const [deviceId, ourKeys] of Object.entries(keys)) {
    if (!(await isOurs(deps, deviceId, ourKeys))) continue;
    await deleteOwnCatalogEntry(deps.catalog, deviceId, runId);
    await deps.identities.delete(deviceId);
    removed++;
  }
  const first = index * MAX_BULK_DEVICES + 1;
  const unknown =
    Object.keys(keys).length > 0
      ? ''
      : `; ${problem ?? 'its keys blob is gone too'}: an identity it created before writing its catalog ` +
        `entry cannot be told apart (the request's valid entries ${first}–${first + MAX_BULK_DEVICES - 1})`;
  return (
    `chunk ${index} has no request blob (the run's work files were lost)` +
    (removed > 0 ? `; the ${removed} identities it had created were removed` : '') +
    unknown
  );
}

/**
 * The result lines of a chunk that could not finish normally: devices whose identity carries this run's keys
 * are completed and reported with them; every other device is reported failed (or cancelled) with the reason.
 */
async function salvage(
  deps: BulkProvisioningDeps,
  runId: string,
  index: number,
  reason: string,
  outcome: 'failed' | 'cancelled' = 'failed',
): Promise<{ text: string; lost?: string }> {
  const done = await deps.work.read(bulkChunkResultBlob(runId, index));
  if (done !== undefined) return { text: done };
  const specsText = await deps.work.read(bulkRequestBlob(runId, index));
  // A missing request is a lost input, never an empty chunk.
  if (specsText === undefined) return { text: '', lost: await lostChunk(deps, runId, index) };
  const specs = JSON.parse(specsText) as BulkDeviceSpec[];
  const { keys, problem } = await readKeys(deps, runId, index);
  const why =
    (outcome === 'cancelled' ? reason : `chunk ${index} failed: ${reason}`) + (problem ? `; ${problem}` : '');
  const limit = pLimit(4);
  const lines = await Promise.all(
    specs.map((spec) =>
      limit(async (): Promise<BulkResultLine> => {
        const ourKeys = keys[spec.id];
        if (ourKeys && (await isOurs(deps, spec.id, ourKeys)))
          return completeDevice(deps, runId, spec, ourKeys, true);
        return { deviceId: spec.id, outcome: outcome, error: why };
      }),
    ),
  );
  return { text: await deps.work.writeOnce(bulkChunkResultBlob(runId, index), linesText(lines)) };
}

/**
 * Removes every identity of the run (found by its catalog entry) that no result line reports with its keys,
 * entry first. Returns how many. Paged; bounded by the run's size.
 */
async function removeUnreported(
  deps: BulkProvisioningDeps,
  runId: string,
  reported: ReadonlySet<string>,
): Promise<number> {
  let removed = 0;
  let continuationToken: string | undefined;
  do {
    const page = await deps.catalog.query({
      creationToken: runId,
      top: 1000,
      ...(continuationToken === undefined ? {} : { continuationToken }),
    });
    for (const entry of page.items) {
      if (reported.has(entry.id)) continue;
      if (!(await deleteOwnCatalogEntry(deps.catalog, entry.id, runId))) continue;
      await deps.identities.delete(entry.id);
      removed++;
    }
    continuationToken = page.continuationToken;
  } while (continuationToken !== undefined);
  return removed;
}

/**
 * The result line of one device of a chunk after the bulk identity create: completed (catalog entry, keys) when
 * the identity is ours — created now, or by an earlier attempt of this chunk with the keys generated here.
 */
async function deviceLine(
  deps: BulkProvisioningDeps,
  runId: string,
  spec: BulkDeviceSpec,
  outcome: BulkOutcome | undefined,
  keys: SymmetricKeys,
): Promise<BulkResultLine> {
  let ours = outcome?.ok === true;
  if (outcome && !outcome.ok && outcome.error === 'already-exists') ours = await isOurs(deps, spec.id, keys);
  if (ours) return completeDevice(deps, runId, spec, keys);
  const error = outcome && !outcome.ok ? outcome : undefined;
  return {
    deviceId: spec.id,
    outcome: error?.error === 'already-exists' || error?.error === 'invalid' ? error.error : 'failed',
    error: error?.message ?? 'no outcome from the identity store',
  };
}

/** Creates the identities and catalog entries of one chunk; a throttled chunk answers `throttled` (it waits). */
async function provisionChunk(
  deps: BulkProvisioningDeps,
  input: { runId: string; index: number },
): Promise<ChunkReply> {
  const { runId, index } = input;
  const done = await deps.work.read(bulkChunkResultBlob(runId, index));
  if (done !== undefined) return { throttled: false, ...countsOf(parseLines(done)) };

  const specsText = await deps.work.read(bulkRequestBlob(runId, index));
  if (specsText === undefined) {
    // Not retried: a missing blob does not come back.
    return { throttled: false, ...countsOf([]), lost: await lostChunk(deps, runId, index) };
  }
  const specs = JSON.parse(specsText) as BulkDeviceSpec[];
  const keys = await fixKeys(deps, runId, index, specs);
  const keysOf = (id: string) => keys[id] as SymmetricKeys;

  let outcomes;
  try {
    outcomes = await deps.identities.createMany(specs.map((s) => ({ deviceId: s.id, keys: keysOf(s.id) })));
  } catch (error) {
    if (error instanceof ServiceUnavailableError) return throttledReply(error);
    throw error;
  }

  const limit = pLimit(8);
  // Settled, not raced: every device's work has ended before this activity answers.
  const settled = await Promise.allSettled(
    specs.map((spec, i) => limit(() => deviceLine(deps, runId, spec, outcomes[i], keysOf(spec.id)))),
  );
  const lines: BulkResultLine[] = [];
  for (const result of settled) {
    if (result.status === 'fulfilled') {
      lines.push(result.value);
      continue;
    }
    // A throttled look-up or catalog write: nothing recorded yet, so the whole chunk can run again after a
    // durable wait (identities and entries already made are recognised as ours by their keys and token).
    if (result.reason instanceof ServiceUnavailableError) return throttledReply(result.reason);
    throw result.reason;
  }
  const stored = await deps.work.writeOnce(bulkChunkResultBlob(runId, index), linesText(lines));
  return { throttled: false, ...countsOf(parseLines(stored)) };
}

/** Activity handlers of bulk provisioning. */
export function makeBulkProvisioningActivities(deps: BulkProvisioningDeps) {
  return {
    [BulkActivity.provisionChunk]: (input: { runId: string; index: number }) => provisionChunk(deps, input),

    [BulkActivity.salvageChunk]: async (input: {
      runId: string;
      index: number;
      reason: string;
      outcome?: 'failed' | 'cancelled';
    }): Promise<ChunkOutcome> => {
      const { text, lost } = await salvage(deps, input.runId, input.index, input.reason, input.outcome);
      return { ...countsOf(parseLines(text)), ...(lost !== undefined ? { lost } : {}) };
    },

    [BulkActivity.assemble]: makeAssemble(deps),
  };
}

/**
 * The assembly: one results blob for the run, written whatever was lost (a result per device it can still name,
 * with the reason), the run's unreported identities removed, the work blobs removed. What makes the run fail is
 * returned as `lost`, and kept in `{runId}.failure.json` beside the results (written first), so a retried
 * assembly that finds the results already written reports it again.
 */
function makeAssemble(deps: BulkProvisioningDeps) {
  return async (input: {
    runId: string;
    chunks: number;
    cancelledFrom?: number;
    stopped?: string;
    invalid?: number;
  }): Promise<{ results: string; lost?: string[] }> => {
    const name = `${input.runId}.jsonl`;
    const shown = `${deps.resultsContainer}/${name}`;
    const cleanUp = async () => {
      for (const prefix of ['requests', 'keys', 'results'])
        await deps.work.deletePrefix(`${prefix}/${input.runId}/`);
    };
    if ((await deps.results.read(name)) !== undefined) {
      // Assembled by an earlier attempt, which may have stopped half-way through the clean-up.
      const failure = await deps.results.read(bulkFailureBlob(input.runId));
      await cleanUp();
      const lost = failure === undefined ? [] : (JSON.parse(failure) as { lost: string[] }).lost;
      return { results: shown, ...(lost.length > 0 ? { lost } : {}) };
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
      try {
        const part = await (cancelled
          ? salvage(deps, input.runId, index, 'cancelled by request', 'cancelled')
          : salvage(deps, input.runId, index, reason));
        for (const line of parseLines(part.text)) lines.push(line);
        if (part.lost !== undefined) lost.push(part.lost);
      } catch (error) {
        if (error instanceof ServiceUnavailableError) throw error; // the activity is retried
        lost.push(`chunk ${index} could not be salvaged (${failureMessage(error)})`);
      }
    }
    if ((input.invalid ?? 0) > 0) {
      const skipped = await deps.work.read(bulkInvalidBlob(input.runId));
      if (skipped === undefined) lost.push(`the list of its ${input.invalid ?? 0} invalid entries was lost`);
      else for (const line of parseLines(skipped)) lines.push(line);
    }
    const reported = new Set(lines.flatMap((line) => (line.outcome === 'created' ? [line.deviceId] : [])));
    const removed = await removeUnreported(deps, input.runId, reported);
    if (removed > 0)
      lost.push(
        `${removed} identities of the run that no result reports were removed (found by their catalog entries)`,
      );
    if (lost.length > 0) await deps.results.write(bulkFailureBlob(input.runId), JSON.stringify({ lost }));
    const expireAt = keysExpiry(deps.now?.() ?? new Date(), deps.keysRetentionMs);
    await deps.results.write(
      name,
      resultLinesText(
        lines.map((line) => (line.outcome === 'created' ? { ...line, keysExpireAt: expireAt } : line)),
      ),
    );
    await cleanUp();
    return { results: shown, ...(lost.length > 0 ? { lost } : {}) };
  };
}
